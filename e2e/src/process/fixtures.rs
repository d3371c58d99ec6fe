//! Suites, scripted models and plans the process-level tests submit.

/// A suite of `tasks` tasks `t00`, `t01`, …: each asks for "ok" and passes when the answer contains
/// "ok" (the scripted answers of [`Scripted`] do).
pub fn suite_toml(tasks: usize) -> String {
    let mut s = String::from("name = \"process\"\nversion = \"1\"\n");
    for i in 0..tasks {
        s.push_str(&format!(
            "\n[[tasks]]\nid = \"{}\"\ncategory = \"c{}\"\nprompt = \"Task {i}: say ok.\"\npass = [{{ contains = \"ok\" }}]\n",
            task_id(i),
            i % 3
        ));
    }
    s
}

pub fn task_id(i: usize) -> String {
    format!("t{i:02}")
}

/// A scripted-model fault (see modelfile/src/scripted.rs).
#[derive(Debug, Clone)]
pub struct Fault {
    pub task: String,
    pub repetition: Option<u32>,
    pub attempts: Option<Vec<u32>>,
    /// "fail" | "hang" | "crash" | "kill"
    pub kind: String,
}

/// A scripted model over [`suite_toml`]'s tasks: every answer is "ok" padded to a known number of
/// estimated tokens (4 bytes each), so a job lasts `tokens / tokens_per_second` seconds.
#[derive(Debug, Clone)]
pub struct Scripted {
    pub name: String,
    pub tasks: usize,
    pub tokens_per_second: f64,
    pub delay_ms: u64,
    pub load_ms: Option<u64>,
    /// Answer length of task i, in tokens.
    pub tokens: fn(usize) -> u32,
    pub faults: Vec<Fault>,
}

impl Scripted {
    /// `tasks` answers of 40 tokens at 100 tokens/s: 400 ms a job.
    pub fn new(name: &str, tasks: usize) -> Scripted {
        Scripted {
            name: name.into(),
            tasks,
            tokens_per_second: 100.0,
            delay_ms: 0,
            load_ms: None,
            tokens: |_| 40,
            faults: Vec::new(),
        }
    }

    pub fn fault(
        mut self,
        task: &str,
        repetition: Option<u32>,
        attempts: Option<&[u32]>,
        kind: &str,
    ) -> Self {
        self.faults.push(Fault {
            task: task.into(),
            repetition,
            attempts: attempts.map(<[u32]>::to_vec),
            kind: kind.into(),
        });
        self
    }

    /// The answer of task `i`.
    pub fn answer(&self, i: usize) -> String {
        let bytes = ((self.tokens)(i) as usize * 4).max(2);
        format!("ok{}", ".".repeat(bytes - 2))
    }

    pub fn toml(&self) -> String {
        let mut s = format!(
            "name = \"{}\"\ntokens_per_second = {:?}\ndelay_ms = {}\n",
            self.name, self.tokens_per_second, self.delay_ms
        );
        // Only written when set, so these files also parse before `load_ms` exists.
        if let Some(ms) = self.load_ms {
            s.push_str(&format!("load_ms = {ms}\n"));
        }
        s.push_str("[answers]\n");
        for i in 0..self.tasks {
            s.push_str(&format!("\"{}\" = [\"{}\"]\n", task_id(i), self.answer(i)));
        }
        for f in &self.faults {
            s.push_str(&format!("\n[[faults]]\ntask = \"{}\"\n", f.task));
            if let Some(r) = f.repetition {
                s.push_str(&format!("repetition = {r}\n"));
            }
            if let Some(a) = &f.attempts {
                s.push_str(&format!("attempts = {a:?}\n"));
            }
            s.push_str(&format!("kind = \"{}\"\n", f.kind));
        }
        s
    }
}

/// A plan over suite file `suite` with scripted model files `models` and `extra` top-level keys.
pub fn plan_text(suite: &str, repetitions: u32, models: &[&str], extra: &str) -> String {
    let mut s = format!("suite = \"{suite}\"\nrepetitions = {repetitions}\nseed = 1\n{extra}\n");
    for m in models {
        s.push_str(&format!("[[models]]\nscripted = \"{m}\"\n"));
    }
    s
}
