package org.pynenc.sidecar.wf;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.UUID;

/**
 * The sidecar's deterministic derivations, computed locally (checked against
 * tests/vectors/derivations.json). Derived, not random: never use them for secrets.
 */
public final class Derivations {
  /** The namespace of every deterministic uuid: UUIDv5 of "https://pynenc.org/sidecar/uuid/v1". */
  public static final UUID UUID_NAMESPACE = UUID.fromString("4ec88ec1-5c73-580b-b761-48c079c72b4a");

  private Derivations() {}

  /** The text both derivations hash: "&lt;scope&gt;#&lt;sequence&gt;". */
  public static String name(String scope, long sequence) {
    return scope + "#" + sequence;
  }

  /** The top 53 bits of SHA-256(name): the first 8 bytes big-endian, shifted right by 11. */
  public static long randomBits(String scope, long sequence) {
    byte[] digest = digest("SHA-256", name(scope, sequence).getBytes(StandardCharsets.UTF_8));
    return ByteBuffer.wrap(digest, 0, 8).getLong() >>> 11;
  }

  /** What Random returns at (scope, sequence): a double in [0, 1). */
  public static double random(String scope, long sequence) {
    return randomBits(scope, sequence) / 0x1p53;
  }

  /** What Uuid returns at (scope, sequence): UUIDv5 of the name in {@link #UUID_NAMESPACE}. */
  public static String uuid(String scope, long sequence) {
    ByteBuffer input = ByteBuffer.allocate(16 + name(scope, sequence).getBytes(StandardCharsets.UTF_8).length);
    input.putLong(UUID_NAMESPACE.getMostSignificantBits()).putLong(UUID_NAMESPACE.getLeastSignificantBits());
    input.put(name(scope, sequence).getBytes(StandardCharsets.UTF_8));
    byte[] hash = digest("SHA-1", input.array());
    hash[6] = (byte) ((hash[6] & 0x0f) | 0x50); // version 5
    hash[8] = (byte) ((hash[8] & 0x3f) | 0x80); // RFC 4122 variant
    ByteBuffer bytes = ByteBuffer.wrap(hash, 0, 16);
    return new UUID(bytes.getLong(), bytes.getLong()).toString();
  }

  private static byte[] digest(String algorithm, byte[] data) {
    try {
      return MessageDigest.getInstance(algorithm).digest(data);
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(algorithm + " is part of every Java platform", e);
    }
  }
}
