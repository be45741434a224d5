// Needs a sidecar serving mutual TLS and requiring a token: PYNENC_SIDECAR_SECURE_ADDRESS,
// PYNENC_SIDECAR_TLS_CA, PYNENC_SIDECAR_CLIENT_CERT, PYNENC_SIDECAR_CLIENT_KEY and
// PYNENC_SIDECAR_TOKEN (tests/test_security.py starts one and runs this file; skipped without).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Client, Code, Reason, SidecarError, deriveRandom, securityFromEnv } from "../src/index.js";

const address = process.env.PYNENC_SIDECAR_SECURE_ADDRESS;
const unique = (prefix: string) => `${prefix}-${process.hrtime.bigint()}`;

describe("against a sidecar with mutual TLS and a token", { skip: address ? false : "PYNENC_SIDECAR_SECURE_ADDRESS is not set" }, () => {
  test("TLS, a client certificate and a token given as options", async () => {
    const env = securityFromEnv();
    const client = Client.connect(address!, { tlsCa: env.tlsCa, tlsCert: env.tlsCert, tlsKey: env.tlsKey, token: env.token });
    try {
      const id = { workflowId: unique("ts-secure") };
      assert.equal(await client.context("ts-secure", id).random(), deriveRandom(id.workflowId, 1));
      const inv = await client.context("ts-secure", id).executeTask("secure.echo", { x: 1 }, async () => ({ ok: true }));
      assert.deepEqual(inv.result, { ok: true });
    } finally {
      client.close();
    }
  });

  test("a missing or wrong token is UNAUTHENTICATED", async () => {
    const env = securityFromEnv();
    for (const token of ["", "a-wrong-token-0123456789"]) {
      const client = Client.connect(address!, { tlsCa: env.tlsCa, tlsCert: env.tlsCert, tlsKey: env.tlsKey, token });
      try {
        await client.context("ts-secure", { workflowId: unique("ts-secure") }).random();
        assert.fail("expected UNAUTHENTICATED");
      } catch (err) {
        assert.ok(err instanceof SidecarError, String(err));
        assert.equal(err.code, Code.Unauthenticated);
        assert.equal(err.reason, Reason.UNAUTHENTICATED);
      } finally {
        client.close();
      }
    }
  });

  test("security read from the PYNENC_SIDECAR_* variables", async () => {
    const client = Client.connect(address!);
    try {
      const id = { workflowId: unique("ts-secure-env") };
      assert.equal(await client.context("ts-secure", id).random(), deriveRandom(id.workflowId, 1));
    } finally {
      client.close();
    }
  });
});
