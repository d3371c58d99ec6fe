//! Which role each RPC needs: one table, checked by the gate before any service sees a request.
//!
//! The table names every method of the benchfarm services; a method missing from it needs the
//! operator (fail closed), and a unit test walks the services' descriptors so a new RPC cannot be
//! added without deciding who may call it. Health and reflection stay open: load balancers and
//! `grpcurl list` must work without a token, and neither reveals or changes farm state.

use super::role::Role;

/// What a method needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Anyone, with or without a token.
    Nothing,
    Role(Role),
}

/// Services open to everyone.
const OPEN_SERVICES: [&str; 3] = [
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// Every benchfarm RPC and the role it needs.
pub const METHODS: &[(&str, &str, Role)] = &[
    ("benchfarm.v1.WorkerService", "Connect", Role::Worker),
    ("benchfarm.v1.FarmService", "SubmitRun", Role::Submitter),
    ("benchfarm.v1.FarmService", "GetRun", Role::Submitter),
    ("benchfarm.v1.FarmService", "ListRuns", Role::Submitter),
    ("benchfarm.v1.FarmService", "WatchRun", Role::Submitter),
    ("benchfarm.v1.FarmService", "ListWorkers", Role::Submitter),
    ("benchfarm.v1.FarmService", "GetReport", Role::Submitter),
    ("benchfarm.v1.FarmService", "CancelRun", Role::Operator),
    ("benchfarm.v1.FarmService", "RegradeRun", Role::Operator),
    ("benchfarm.v1.FarmService", "DrainWorker", Role::Operator),
    ("benchfarm.v1.FarmService", "ClearWorker", Role::Operator),
    ("benchfarm.v1.FarmService", "AddToken", Role::Operator),
    ("benchfarm.v1.FarmService", "ListTokens", Role::Operator),
    ("benchfarm.v1.FarmService", "RevokeToken", Role::Operator),
    ("benchfarm.v1.ModelService", "UploadModel", Role::Operator),
    ("benchfarm.v1.ModelService", "UploadOffset", Role::Operator),
    ("benchfarm.v1.ModelService", "ListModels", Role::Submitter),
    ("benchfarm.v1.ModelService", "RemoveModel", Role::Operator),
    // The worker's own token: fetching is part of running a job, and opens nothing else.
    ("benchfarm.v1.ModelService", "FetchModel", Role::Worker),
];

/// What the request path `/package.Service/Method` needs.
pub fn needs(path: &str) -> Needs {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let (service, method) = trimmed.split_once('/').unwrap_or((trimmed, ""));
    if OPEN_SERVICES.contains(&service) {
        return Needs::Nothing;
    }
    METHODS
        .iter()
        .find(|(s, m, _)| *s == service && *m == method)
        .map(|(_, _, role)| Needs::Role(*role))
        .unwrap_or(Needs::Role(Role::Operator))
}

/// The method's short name for error messages (`CancelRun`), or the whole path.
pub fn method_name(path: &str) -> &str {
    path.rsplit('/')
        .next()
        .filter(|m| !m.is_empty())
        .unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn every_rpc_of_the_benchfarm_services_is_in_the_table() {
        let set =
            prost_types::FileDescriptorSet::decode(benchfarm_proto::FILE_DESCRIPTOR_SET).unwrap();
        let mut seen = 0;
        for file in &set.file {
            for service in &file.service {
                let full = format!("{}.{}", file.package(), service.name());
                for method in &service.method {
                    let listed = METHODS
                        .iter()
                        .any(|(s, m, _)| *s == full && *m == method.name());
                    assert!(listed, "{full}/{} has no entry in METHODS", method.name());
                    seen += 1;
                }
            }
        }
        assert_eq!(seen, METHODS.len(), "METHODS lists a method no service has");
    }

    #[test]
    fn health_and_reflection_are_open_and_unknown_methods_need_an_operator() {
        assert_eq!(needs("/grpc.health.v1.Health/Check"), Needs::Nothing);
        assert_eq!(
            needs("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"),
            Needs::Nothing
        );
        assert_eq!(
            needs("/benchfarm.v1.FarmService/CancelRun"),
            Needs::Role(Role::Operator)
        );
        assert_eq!(
            needs("/benchfarm.v1.WorkerService/Connect"),
            Needs::Role(Role::Worker)
        );
        assert_eq!(
            needs("/benchfarm.v1.FarmService/Nope"),
            Needs::Role(Role::Operator)
        );
        assert_eq!(needs("garbage"), Needs::Role(Role::Operator));
        assert_eq!(method_name("/benchfarm.v1.FarmService/GetRun"), "GetRun");
    }
}
