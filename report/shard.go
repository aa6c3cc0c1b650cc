package report

import (
	"fmt"
	"sort"
)

// Shard records which part of a split input list a report covers: the
// inputs were sorted, and shard Index (1-based) of Count took every
// Count-th of them starting at position Index. Inputs is the length of the
// whole list, so a merge can tell it joined every shard.
type Shard struct {
	Index  int `json:"index"`
	Count  int `json:"count"`
	Inputs int `json:"inputs"`
}

// ShardCoverage reports, for reports that carry a Shard, which shards of the
// split are missing and which were given more than once. Reports without a
// Shard are ignored. It fails when the sharded reports disagree on the
// number of shards or of inputs (they come from different splits).
func ShardCoverage(reports ...*Report) (missing, duplicated []int, err error) {
	seen := map[int]int{}
	var first *Shard
	for i, r := range reports {
		if r == nil || r.Shard == nil {
			continue
		}
		s := r.Shard
		if s.Count < 1 || s.Index < 1 || s.Index > s.Count {
			return nil, nil, fmt.Errorf("report %d: invalid shard %d/%d", i+1, s.Index, s.Count)
		}
		if first == nil {
			first = s
		} else if s.Count != first.Count || s.Inputs != first.Inputs {
			return nil, nil, fmt.Errorf("report %d is shard %d/%d of %d inputs, another is shard %d/%d of %d inputs: they come from different splits",
				i+1, s.Index, s.Count, s.Inputs, first.Index, first.Count, first.Inputs)
		}
		seen[s.Index]++
	}
	if first == nil {
		return nil, nil, nil
	}
	for i := 1; i <= first.Count; i++ {
		switch n := seen[i]; {
		case n == 0:
			missing = append(missing, i)
		case n > 1:
			duplicated = append(duplicated, i)
		}
	}
	sort.Ints(missing)
	sort.Ints(duplicated)
	return missing, duplicated, nil
}

// Apply returns the inputs of shard s: names sorted (bytewise) and every
// Count-th taken from position Index. It fills s.Inputs. A nil shard returns
// names unchanged.
func (s *Shard) Apply(names []string) []string {
	if s == nil {
		return names
	}
	sorted := append([]string(nil), names...)
	sort.Strings(sorted)
	s.Inputs = len(sorted)
	var out []string
	for k := s.Index - 1; k < len(sorted); k += s.Count {
		out = append(out, sorted[k])
	}
	return out
}
