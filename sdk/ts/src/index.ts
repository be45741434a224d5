export { Client, Context, Invocation, InvocationStatus, OperationInGeneratorError, bearerToken, describeWait, securityFromEnv } from "./wf.js";
export type { ClientOptions, ExecutorClient, Identity, SecurityOptions, TaskFn, TaskOptions } from "./wf.js";
export { Code, ERROR_DOMAIN, Reason, SidecarError, TaskFailedError, TaskSuspended, reasonOf } from "./errors.js";
export { INSTRUMENTATION_NAME, tracingInterceptor } from "./tracing.js";
export type { FieldViolation } from "./errors.js";
export { UUID_NAMESPACE, derivationName, deriveRandom, deriveUuid, randomBits } from "./derive.js";
export * as proto from "./gen/pynenc/sidecar/v1/deterministic_executor_pb.js";
export * as common from "./gen/pynenc/sidecar/v1/common_pb.js";
export { DEFAULT_LEASE_TTL_MS, DEFAULT_WAIT_SLICE_MS, ENV, RENEW_FRACTION, RETRY, retryInterceptor } from "./contract.js";
