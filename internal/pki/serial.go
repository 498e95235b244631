package pki

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"math/big"
)

// serialBytes is the size of our serial numbers: 128 bits, twice the 64 random
// bits the CA/Browser Forum asks for, and well under RFC 5280's 20 octets.
const serialBytes = 16

// randomSerial returns a positive serial with 126 random bits. The top bit is
// cleared so that the DER integer needs no sign byte, and the next one set so
// that every serial has the same length and never looks like a small number.
func randomSerial(r io.Reader) (*big.Int, error) {
	b := make([]byte, serialBytes)
	if _, err := io.ReadFull(randOrDefault(r), b); err != nil {
		return nil, newError("", ReasonRandomnessFailed, "reading random serial number", "", err)
	}
	b[0] = b[0]&0x7f | 0x40
	return new(big.Int).SetBytes(b), nil
}

// randomHex returns n random bytes as hex, for names.
func randomHex(r io.Reader, n int) (string, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(randOrDefault(r), b); err != nil {
		return "", newError("", ReasonRandomnessFailed, fmt.Sprintf("reading %d random bytes", n), "", err)
	}
	return hex.EncodeToString(b), nil
}

func randOrDefault(r io.Reader) io.Reader {
	if r == nil {
		return rand.Reader
	}
	return r
}
