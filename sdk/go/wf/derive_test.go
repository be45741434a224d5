package wf

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

type vectorFile struct {
	UUIDNamespace string `json:"uuid_namespace"`
	Derivations   []struct {
		Scope      string  `json:"scope"`
		Sequence   int64   `json:"sequence"`
		Name       string  `json:"name"`
		RandomBits uint64  `json:"random_bits"`
		Random     float64 `json:"random"`
		UUID       string  `json:"uuid"`
	} `json:"derivations"`
}

func loadVectors(t *testing.T) vectorFile {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "tests", "vectors", "derivations.json"))
	if err != nil {
		t.Fatalf("read vectors: %v", err)
	}
	var v vectorFile
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("parse vectors: %v", err)
	}
	if len(v.Derivations) == 0 {
		t.Fatal("no derivation vectors")
	}
	return v
}

func TestDerivationVectors(t *testing.T) {
	v := loadVectors(t)
	if v.UUIDNamespace != UUIDNamespace {
		t.Fatalf("namespace %s, vectors say %s", UUIDNamespace, v.UUIDNamespace)
	}
	for _, c := range v.Derivations {
		if got := DerivationName(c.Scope, c.Sequence); got != c.Name {
			t.Errorf("name(%q, %d) = %q, want %q", c.Scope, c.Sequence, got, c.Name)
		}
		if got := DeriveRandomBits(c.Scope, c.Sequence); got != c.RandomBits {
			t.Errorf("randomBits(%.20q, %d) = %d, want %d", c.Scope, c.Sequence, got, c.RandomBits)
		}
		if got := DeriveRandom(c.Scope, c.Sequence); got != c.Random {
			t.Errorf("random(%.20q, %d) = %v, want %v", c.Scope, c.Sequence, got, c.Random)
		}
		if got := DeriveUUID(c.Scope, c.Sequence); got != c.UUID {
			t.Errorf("uuid(%.20q, %d) = %s, want %s", c.Scope, c.Sequence, got, c.UUID)
		}
	}
}
