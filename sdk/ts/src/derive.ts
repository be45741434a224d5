// Local derivations of the sidecar's deterministic values, checked against the shared
// vectors in tests/vectors/derivations.json.
import { createHash } from "node:crypto";

/** UUIDv5 of the URL "https://pynenc.org/sidecar/uuid/v1": the namespace of every uuid(). */
export const UUID_NAMESPACE = "4ec88ec1-5c73-580b-b761-48c079c72b4a";

const NAMESPACE_BYTES = Buffer.from(UUID_NAMESPACE.replaceAll("-", ""), "hex");

/** The text both derivations hash: "<scope>#<sequence>". */
export function derivationName(scope: string, sequence: number | bigint): string {
  return `${scope}#${BigInt(sequence).toString()}`;
}

/** The top 53 bits of SHA-256("<scope>#<sequence>"): the first 8 bytes big-endian, >> 11. */
export function randomBits(scope: string, sequence: number | bigint): bigint {
  const digest = createHash("sha256").update(derivationName(scope, sequence), "utf8").digest();
  return digest.readBigUInt64BE(0) >> 11n;
}

/**
 * The value the sidecar's Random returns at (scope, sequence): a float in [0, 1).
 * Derived, not random: never use it for secrets.
 */
export function deriveRandom(scope: string, sequence: number | bigint): number {
  return Number(randomBits(scope, sequence)) / 2 ** 53;
}

/** The value the sidecar's Uuid returns at (scope, sequence): UUIDv5 in UUID_NAMESPACE. */
export function deriveUuid(scope: string, sequence: number | bigint): string {
  const hash = createHash("sha1").update(NAMESPACE_BYTES).update(derivationName(scope, sequence), "utf8").digest();
  const bytes = Buffer.from(hash.subarray(0, 16));
  bytes[6] = (bytes[6]! & 0x0f) | 0x50;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = bytes.toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
