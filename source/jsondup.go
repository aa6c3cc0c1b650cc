package source

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// DuplicateKey returns the path of the first object key that appears twice
// in the same JSON object of data (e.g. `rootfs.diff_ids`, `[0].Layers`), or
// "" when there is none (invalid JSON is scanned up to where it breaks). encoding/json keeps the
// last of repeated keys while other parsers may keep the first, so two tools
// can read different content from the same bytes: readers report it.
func DuplicateKey(data []byte) string {
	dec := json.NewDecoder(bytes.NewReader(data))
	type frame struct {
		object bool
		keys   map[string]bool
		path   string
		index  int
		key    bool // object: the next string token is a key
	}
	var stack []*frame
	elemPath := func() string {
		if len(stack) == 0 {
			return ""
		}
		top := stack[len(stack)-1]
		if !top.object {
			p := top.path + "[" + strconv.Itoa(top.index) + "]"
			top.index++
			return p
		}
		return top.path
	}
	var pendingKey string
	for {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				return ""
			}
			continue
		}
		top := (*frame)(nil)
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.key {
			k, _ := tok.(string)
			if top.keys[k] {
				if top.path == "" {
					return k
				}
				return top.path + "." + k
			}
			top.keys[k] = true
			top.key = false
			pendingKey = k
			continue
		}
		// A value: its path is the pending key of an object, or an array index.
		var p string
		if top != nil && top.object {
			p = pendingKey
			if top.path != "" {
				p = top.path + "." + pendingKey
			}
			top.key = true
		} else {
			p = elemPath()
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{object: true, keys: map[string]bool{}, path: p, key: true})
		case json.Delim('['):
			stack = append(stack, &frame{path: p})
		default:
			if len(stack) == 0 {
				return "" // a scalar document
			}
		}
	}
}
