package tarsplit

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"testing"
)

// FuzzDecodeAndAssemble feeds arbitrary JSON lines to the decoder and the
// assembler: they must return errors, never panic or hang.
func FuzzDecodeAndAssemble(f *testing.F) {
	f.Add([]byte(`{"type":2,"payload":"aGVsbG8=","position":0}` + "\n" + `{"type":1,"name":"../x","size":3,"payload":"AAAAAAAAAAA=","position":1}` + "\n"))
	f.Add([]byte(`{"type":1,"name_raw":"/w==","size":1,"payload":"AAAAAAAAAAA=","position":0}`))
	f.Add([]byte(`{"type":2,"payload":"","position":0}{"type":2}`))
	f.Fuzz(func(t *testing.T, jsonl []byte) {
		var gz bytes.Buffer
		w := gzip.NewWriter(&gz)
		w.Write(jsonl)
		w.Close()
		r, err := Open(bytes.NewReader(gz.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		for {
			if _, err := r.Next(); err != nil {
				break
			}
		}
		_, _ = Assemble(context.Background(), bytes.NewReader(gz.Bytes()), missingOpener{}, io.Discard)
	})
}

// FuzzCapture feeds arbitrary bytes to a capture: Close must return, and a
// successful capture must compare equal to itself.
func FuzzCapture(f *testing.F) {
	f.Add(buildTarNoT([]tarEntry{reg("a", []byte("x")), dir("d/")}))
	f.Add([]byte("not a tar"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c := NewCaptureWith(CaptureOptions{MaxHoleBytes: 1 << 20})
		c.Write(b)
		if _, err := c.Close(); err != nil {
			return
		}
		c2 := NewCapture()
		c2.Write(b)
		c2.Close()
		if d := Compare(c, c2); !d.Equal() {
			t.Fatalf("capture differs from itself: %v", d)
		}
	})
}

func FuzzLastHeader(f *testing.F) {
	f.Add(make([]byte, 1024))
	f.Fuzz(func(t *testing.T, b []byte) { lastHeader(b) })
}
