//! Conversions from the worker's local types (engine, hardware, models, grades) to wire types.

use benchfarm_engine::hardware::Hardware;
use benchfarm_engine::models::LocalModel;
use benchfarm_proto::v1 as pb;
use benchfarm_suite::{Grade, Verdict};

pub fn grade_to_wire(g: &Grade) -> pb::Grade {
    pb::Grade {
        verdict: match g.verdict {
            Verdict::Pass => pb::Verdict::Pass,
            Verdict::Partial => pb::Verdict::Partial,
            Verdict::Fail => pb::Verdict::Fail,
        } as i32,
        score: g.score,
        extracted: g.extracted.clone(),
        checks: g
            .checks
            .iter()
            .map(|c| pb::CheckOutcome {
                group: c.group.clone(),
                check: c.check.clone(),
                held: c.held,
            })
            .collect(),
    }
}

pub fn hardware_to_wire(h: &Hardware) -> pb::Hardware {
    pb::Hardware {
        cpu_model: h.cpu_model.clone(),
        arch: h.arch.clone(),
        physical_cores: h.physical_cores,
        logical_cores: h.logical_cores,
        simd: h.simd.clone(),
        ram_total_bytes: h.ram_total_bytes,
        ram_available_bytes: h.ram_available_bytes,
        os: h.os.clone(),
        kernel: h.kernel.clone(),
        board: h.board.clone().unwrap_or_default(),
        cgroup_cpu_limit: h.cgroup_cpu_limit.unwrap_or(0.0),
        cgroup_memory_limit_bytes: h.cgroup_memory_limit_bytes.unwrap_or(0),
    }
}

pub fn model_to_wire(m: &LocalModel) -> pb::ModelInfo {
    pb::ModelInfo {
        sha256: m.sha256.clone(),
        name: m.name.clone(),
        size_bytes: m.size_bytes,
        file_name: m.file_name.clone(),
        architecture: m.architecture.clone().unwrap_or_default(),
        has_chat_template: m.has_chat_template,
    }
}
