// The package's public surface, pinned: a change to what `@pynenc/sidecar` exports is a
// deliberate edit of this list (and of the README and CHANGELOG), never an accident.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as sdk from "../src/index.js";

const EXPORTED = [
  "Client",
  "Code",
  "Context",
  "DEFAULT_LEASE_TTL_MS",
  "DEFAULT_WAIT_SLICE_MS",
  "DISPATCH",
  "ENV",
  "ERROR_DOMAIN",
  "INSTRUMENTATION_NAME",
  "Invocation",
  "InvocationStatus",
  "ORIGIN_LINK_ATTRIBUTE",
  "OperationInGeneratorError",
  "RENEW_FRACTION",
  "RETRY",
  "Reason",
  "SidecarError",
  "TaskFailedError",
  "TaskSuspended",
  "UUID_NAMESPACE",
  "Worker",
  "WorkflowLog",
  "bearerToken",
  "common",
  "derivationName",
  "deriveRandom",
  "deriveUuid",
  "describeWait",
  "proto",
  "randomBits",
  "reasonOf",
  "retryInterceptor",
  "securityFromEnv",
  "tracingInterceptor",
];

test("the package exports exactly its public surface", () => {
  assert.deepEqual(Object.keys(sdk).sort(), [...EXPORTED].sort());
});

// TypeScript's private and @internal members are on the prototypes too: listed apart.
const INTERNAL = new Set(["at", "open", "giveBack", "buffered", "blocking", "flush", "drive", "runLeased", "runOnce",
  "poll", "release", "serve", "serveUntilStopped", "shutDown"]);

function publicMethods(cls: { prototype: object }): string[] {
  return Object.getOwnPropertyNames(cls.prototype)
    .filter((name) => name !== "constructor" && !INTERNAL.has(name))
    .sort();
}

test("the client's and workflow context's public methods", () => {
  assert.deepEqual(publicMethods(sdk.Client), ["close", "context", "contextFromLog", "readLog", "retryWorkflow", "startWorkflow"]);
  assert.deepEqual(publicMethods(sdk.Context), [
    "arguments",
    "baseTime",
    "executeTask",
    "getData",
    "invocationId",
    "isMainTask",
    "random",
    "record",
    "recordJson",
    "sequence",
    "setData",
    "utcNow",
    "utcNowTimestamp",
    "uuid",
  ]);
  assert.deepEqual(publicMethods(sdk.Worker), ["active", "run", "stop"]);
});
