package wf

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strconv"
)

// UUIDNamespace is the namespace of every deterministic uuid: UUIDv5 of the URL
// "https://pynenc.org/sidecar/uuid/v1".
const UUIDNamespace = "4ec88ec1-5c73-580b-b761-48c079c72b4a"

var uuidNamespaceBytes = [16]byte{
	0x4e, 0xc8, 0x8e, 0xc1, 0x5c, 0x73, 0x58, 0x0b,
	0xb7, 0x61, 0x48, 0xc0, 0x79, 0xc7, 0x2b, 0x4a,
}

// DerivationName is the text both derivations hash: "<scope>#<sequence>".
func DerivationName(scope string, sequence int64) string {
	return scope + "#" + strconv.FormatInt(sequence, 10)
}

// DeriveRandomBits returns the top 53 bits of SHA-256("<scope>#<sequence>"): the first
// 8 bytes of the digest as a big-endian uint64, shifted right by 11.
func DeriveRandomBits(scope string, sequence int64) uint64 {
	digest := sha256.Sum256([]byte(DerivationName(scope, sequence)))
	return binary.BigEndian.Uint64(digest[:8]) >> 11
}

// DeriveRandom is the value the sidecar's Random returns for a position whose scope
// (invocation id, or workflow id for the main task) and sequence are given: a float in
// [0, 1). Derived, not random: never use it for secrets.
func DeriveRandom(scope string, sequence int64) float64 {
	return float64(DeriveRandomBits(scope, sequence)) / (1 << 53)
}

// DeriveUUID is the value the sidecar's Uuid returns for a position: UUIDv5 of
// "<scope>#<sequence>" in UUIDNamespace, as canonical lowercase text.
func DeriveUUID(scope string, sequence int64) string {
	h := sha1.New()
	h.Write(uuidNamespaceBytes[:])
	h.Write([]byte(DerivationName(scope, sequence)))
	sum := h.Sum(nil)
	var u [16]byte
	copy(u[:], sum[:16])
	u[6] = (u[6] & 0x0f) | 0x50 // version 5
	u[8] = (u[8] & 0x3f) | 0x80 // RFC 4122 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}
