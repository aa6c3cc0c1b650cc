package tarsplit

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math"
	"unicode/utf8"
)

// rawRecord is one tar-split JSON line, decoded but not yet checked.
type rawRecord struct {
	typ int
	// name is "name_raw" when it decodes to a non-empty value, else "name"
	// (never nil, as []byte(jsonEntry.Name) is not).
	name    []byte
	size    int64
	payload []byte // nil for null or no "payload"
	pos     int
	hasPos  bool
}

// parse decodes line. Lines of the exact shape tar-split's packer writes take
// parseFast; every other line, and every line when slow is set, is decoded by
// encoding/json, whose result and errors parseFast matches exactly.
func (rec *rawRecord) parse(line []byte, slow bool) error {
	if !slow && rec.parseFast(line) {
		return nil
	}
	*rec = rawRecord{}
	return rec.parseJSON(line)
}

// parseJSON decodes line with encoding/json.
func (rec *rawRecord) parseJSON(line []byte) error {
	var je jsonEntry
	if err := json.Unmarshal(line, &je); err != nil {
		return err
	}
	rec.typ, rec.size, rec.payload = je.Type, je.Size, je.Payload
	rec.name = je.NameRaw
	if len(rec.name) == 0 {
		rec.name = []byte(je.Name)
	}
	if je.Position != nil {
		rec.pos, rec.hasPos = *je.Position, true
	}
	return nil
}

// The keys of a record, in the order tar-split's packer (encoding/json over
// storage.Entry's fields) writes them.
const (
	keyType = iota
	keyName
	keyNameRaw
	keySize
	keyPayload
	keyPosition
)

func keyIndex(key []byte) int {
	switch string(key) {
	case "type":
		return keyType
	case "name":
		return keyName
	case "name_raw":
		return keyNameRaw
	case "size":
		return keySize
	case "payload":
		return keyPayload
	case "position":
		return keyPosition
	}
	return -1
}

// parseFast decodes a line of the shape tar-split's JSON packer writes: one
// object without whitespace whose keys are a subset of the known ones, each
// spelled exactly and in the packer's order (so none repeats); integers in
// range, without fraction or exponent; "name" a string without escapes
// or control bytes whose bytes are valid UTF-8; "name_raw" and "payload" null or
// a string that base64.StdEncoding decodes. Not both "name" and "name_raw".
// For every line it accepts, rec is what json.Unmarshal into a jsonEntry gives
// (encoding/json hands such strings to base64.StdEncoding.Decode unchanged).
// It reports false, with rec unspecified, for anything else.
func (rec *rawRecord) parseFast(line []byte) bool {
	n := len(line)
	if n < 2 || line[0] != '{' || line[n-1] != '}' {
		return false
	}
	var name, nameRaw, payload []byte // string contents, unquoted
	var haveName, haveRaw, havePayload bool
	*rec = rawRecord{}
	i, last := 1, -1
	if n == 2 {
		i = n // {}
	}
	for i < n {
		// "key":
		if line[i] != '"' {
			return false
		}
		end := bytes.IndexByte(line[i+1:], '"')
		if end < 0 {
			return false
		}
		k := keyIndex(line[i+1 : i+1+end])
		if k <= last {
			return false // unknown, repeated or out of order
		}
		last = k
		i += end + 2
		if i >= n || line[i] != ':' {
			return false
		}
		i++
		// value
		var ok bool
		switch k {
		case keyType:
			rec.typ, i, ok = fastIntInt(line, i)
		case keySize:
			rec.size, i, ok = fastInt(line, i)
		case keyPosition:
			rec.pos, i, ok = fastIntInt(line, i)
			rec.hasPos = true
		case keyName:
			name, i, ok = fastString(line, i)
			ok = ok && validName(name)
			haveName = true
		case keyNameRaw:
			nameRaw, i, ok, haveRaw = fastBytes(line, i)
		case keyPayload:
			payload, i, ok, havePayload = fastBytes(line, i)
		}
		if !ok || i >= n {
			return false
		}
		// , or the closing brace, which must end the line
		switch {
		case line[i] == ',':
			i++
		case i == n-1:
			i = n
		default:
			return false
		}
	}
	if haveName && haveRaw {
		return false
	}

	// One allocation for the name and the payload: the Entry owns both. Full
	// slice expressions keep an append to one from writing into the other.
	enc := base64.StdEncoding
	buf := make([]byte, len(name)+enc.DecodedLen(len(nameRaw))+enc.DecodedLen(len(payload)))
	w := copy(buf, name)
	if haveRaw {
		m, err := enc.Decode(buf[w:], nameRaw)
		if err != nil {
			return false
		}
		w += m
	}
	rec.name = buf[:w:w]
	if havePayload {
		m, err := enc.Decode(buf[w:], payload)
		if err != nil {
			return false
		}
		rec.payload = buf[w : w+m : w+m]
	}
	return true
}

// fastInt reads a JSON integer at line[i:], -?(0|[1-9][0-9]*), that fits in
// an int64 (what strconv.ParseInt, which encoding/json uses, accepts).
func fastInt(line []byte, i int) (v int64, next int, ok bool) {
	neg := i < len(line) && line[i] == '-'
	if neg {
		i++
	}
	start := i
	var u uint64
	for i < len(line) && line[i] >= '0' && line[i] <= '9' && i-start < 20 {
		u = u*10 + uint64(line[i]-'0')
		i++
	}
	digits := i - start
	limit := uint64(math.MaxInt64)
	if neg {
		limit++
	}
	// 19 digits cannot wrap a uint64; more are out of range anyway.
	if digits == 0 || digits > 19 || (digits > 1 && line[start] == '0') || u > limit {
		return 0, i, false
	}
	if neg {
		return -int64(u), i, true
	}
	return int64(u), i, true
}

// fastIntInt is fastInt for an int field (json refuses values past the int's size).
func fastIntInt(line []byte, i int) (v, next int, ok bool) {
	w, next, ok := fastInt(line, i)
	return int(w), next, ok && int64(int(w)) == w
}

// fastString reads a JSON string at line[i:] that has no escapes, returning its
// contents. Bytes below 0x20 (invalid in JSON) fail.
func fastString(line []byte, i int) (s []byte, next int, ok bool) {
	if i >= len(line) || line[i] != '"' {
		return nil, i, false
	}
	end := bytes.IndexByte(line[i+1:], '"')
	if end < 0 {
		return nil, i, false
	}
	s = line[i+1 : i+1+end]
	return s, i + end + 2, true
}

// validName reports whether s is a JSON string's contents that encoding/json
// returns unchanged: no backslash, no control byte, valid UTF-8.
func validName(s []byte) bool {
	ascii := true
	for _, c := range s {
		if c < 0x20 || c == '\\' {
			return false
		}
		if c >= utf8.RuneSelf {
			ascii = false
		}
	}
	return ascii || utf8.Valid(s)
}

// fastBytes reads a []byte value at line[i:]: null (present false) or a string
// of base64 characters. The string is not decoded here; anything but the base64
// alphabet and '=' fails base64.StdEncoding.Decode except '\r' and '\n', which
// it skips but JSON does not allow raw, so those are refused here.
func fastBytes(line []byte, i int) (s []byte, next int, ok, present bool) {
	if bytes.HasPrefix(line[i:], []byte("null")) {
		return nil, i + 4, true, false
	}
	s, i, ok = fastString(line, i)
	if !ok || bytes.IndexByte(s, '\r') >= 0 || bytes.IndexByte(s, '\n') >= 0 {
		return nil, i, false, false
	}
	return s, i, true, true
}
