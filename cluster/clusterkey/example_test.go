package clusterkey_test

import (
	"fmt"
	"log"

	"github.com/graftcm/graft/cluster/clusterkey"
)

// Operators compare fingerprints, never keys; a mangled key is refused
// without being echoed.
func ExampleParse() {
	tok, err := clusterkey.Parse("graft1_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("fingerprint", tok.Fingerprint())
	_, err = clusterkey.Parse("graft1_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh")
	fmt.Println(err)
	// Output:
	// fingerprint 9dd8e404
	// invalid cluster key: 42 characters after "graft1_", want 43
}
