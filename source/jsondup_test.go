package source

import "testing"

func TestDuplicateKey(t *testing.T) {
	for in, want := range map[string]string{
		`{"a":1,"b":2}`: "",
		`{"a":1,"a":2}`: "a",
		`{"rootfs":{"type":"layers","diff_ids":[],"diff_ids":["x"]}}`: "rootfs.diff_ids",
		`[{"Config":"c","Layers":[],"Layers":["g"]}]`:                 "[0].Layers",
		`[{"a":1},{"a":1},{"b":{"c":[{"d":1,"d":2}]}}]`:               "[2].b.c[0].d",
		`{"a":{"x":1},"b":{"x":1}}`:                                   "",
		`{"a":[{"x":1},{"x":2}],"x":3}`:                               "",
		`{"a":1,"a"`:                                                  "a",
		`"scalar"`:                                                    "",
		`not json`:                                                    "",
		`{"k":{}, "k":[]}`:                                            "k",
	} {
		if got := DuplicateKey([]byte(in)); got != want {
			t.Errorf("DuplicateKey(%s) = %q, want %q", in, got, want)
		}
	}
}
