import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { UUID_NAMESPACE, derivationName, deriveRandom, deriveUuid, randomBits } from "../src/derive.js";

// dist/test/derive.test.js -> repository root is four levels up.
const vectorsPath = fileURLToPath(new URL("../../../../tests/vectors/derivations.json", import.meta.url));

interface Vector {
  scope: string;
  sequence: number;
  name: string;
  random_bits: number;
  random: number;
  uuid: string;
}

const vectors = JSON.parse(readFileSync(vectorsPath, "utf8")) as { uuid_namespace: string; derivations: Vector[] };

test("the uuid namespace is the documented one", () => {
  assert.equal(UUID_NAMESPACE, vectors.uuid_namespace);
});

test("local derivations match the shared vectors", () => {
  assert.ok(vectors.derivations.length > 0);
  for (const v of vectors.derivations) {
    const label = `${v.scope.slice(0, 20)}#${v.sequence}`;
    assert.equal(derivationName(v.scope, v.sequence), v.name, label);
    assert.equal(randomBits(v.scope, v.sequence), BigInt(v.random_bits), label);
    assert.equal(deriveRandom(v.scope, v.sequence), v.random, label);
    assert.equal(deriveUuid(v.scope, v.sequence), v.uuid, label);
  }
});
