import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Client, ERROR_DOMAIN, Reason } from "../src/index.js";
import { COMMIT, DEFAULT_LEASE_TTL_MS, DEFAULT_WAIT_SLICE_MS, DISPATCH, ENV, RENEW_FRACTION, RETRY } from "../src/contract.js";
import { ATTR, SPAN_NAMES } from "../src/tracing.js";
import { createGrpcTransport } from "@connectrpc/connect-node";

// dist/test/contract.test.js -> repository root is four levels up.
const contract = JSON.parse(
  readFileSync(fileURLToPath(new URL("../../../../tests/vectors/client_contract.json", import.meta.url)), "utf8"),
);

test("the SDK's constants are the client contract's", () => {
  assert.equal(ERROR_DOMAIN, contract.error_domain);
  assert.deepEqual(Object.values(Reason), contract.reasons);
  assert.equal(DEFAULT_LEASE_TTL_MS, contract.defaults.lease_ttl_ms);
  assert.equal(DEFAULT_WAIT_SLICE_MS, contract.defaults.wait_slice_ms);
  assert.equal(RENEW_FRACTION, contract.defaults.renew_every_fraction_of_ttl);
  const client = new Client(createGrpcTransport({ baseUrl: "http://127.0.0.1:1" }));
  assert.equal(client.leaseTtlMs, contract.defaults.lease_ttl_ms);
  assert.equal(client.waitTimeoutMs, contract.defaults.wait_slice_ms);
  assert.deepEqual(
    {
      retryable_codes: RETRY.retryableCodes,
      max_attempts: RETRY.maxAttempts,
      initial_backoff_ms: RETRY.initialBackoffMs,
      max_backoff_ms: RETRY.maxBackoffMs,
      backoff_multiplier: RETRY.backoffMultiplier,
    },
    contract.retry,
  );
  assert.deepEqual(ENV, contract.env);
  assert.deepEqual(
    {
      app_id: ATTR.appId,
      workflow_id: ATTR.workflowId,
      workflow_type: ATTR.workflowType,
      parent_workflow_id: ATTR.parentWorkflowId,
      invocation_id: ATTR.invocationId,
      operation: ATTR.operation,
      operation_name: ATTR.operationName,
      sequence: ATTR.sequence,
      task_id: ATTR.taskId,
      replayed: ATTR.replayed,
    },
    contract.span_attributes,
  );
  assert.deepEqual({ ...SPAN_NAMES, workflow: "pynenc.workflow" }, contract.span_names);
});

test("the SDK's dispatch constants are the client contract's", () => {
  assert.equal(DISPATCH.pollTimeoutMsDefault, contract.dispatch.poll_timeout_ms_default);
  assert.equal(DISPATCH.pollTimeoutMsMax, contract.dispatch.poll_timeout_ms_max);
  assert.equal(DISPATCH.maxTasksPerPoll, contract.dispatch.max_tasks_per_poll);
  assert.equal(DISPATCH.maxTaskIdsPerPoll, contract.dispatch.max_task_ids_per_poll);
  assert.equal(DISPATCH.shutdownGraceMsDefault, contract.dispatch.shutdown_grace_ms_default);
});

test("the SDK's buffering constants are the client contract's", () => {
  assert.equal(COMMIT.flushAtOperations, contract.commit.flush_at_operations);
  assert.equal(COMMIT.maxOperations, contract.commit.max_operations);
  assert.equal(COMMIT.conflictReruns, contract.commit.conflict_reruns);
  assert.equal(COMMIT.timeStepUs, contract.commit.time_step_us);
  assert.deepEqual([COMMIT.conflictReason], contract.commit.reasons);
});
