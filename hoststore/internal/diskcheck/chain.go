package diskcheck

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/tarsplit"
)

// maxChain bounds a replayed chain.
const maxChain = 500

// chainBudget bounds what the chain memo keeps at once, in tree nodes plus
// replay operations (each some 100-300 bytes): about 50 MiB at most. Past it
// the least recently used trees and operations are dropped, and a layer
// whose tree or operations were dropped is rebuilt from the nearest kept
// tree below it, its tar-split decoded again: the one case in which an audit
// reads a tar-split more than once. Variable for tests.
var chainBudget = 1 << 18

// chainMemo is shared by the layers of one audit (Env): each full-rootfs
// layer's replay operations, taken from the decode of its tar-split that
// rebuilds it (or decoded on demand for a layer that is not rebuilt), and
// each layer's merged path tree, computed once from its parent's (a copy of
// the parent's tree with the layer's operations applied). So a chain of N
// layers decodes N tar-splits and builds N trees, where a replay from the
// base for every layer decoded N²/2 (twice over).
type chainMemo struct {
	mu    sync.Mutex
	items map[string]*memoItem
	lru   list.List // of *memoItem kept, most recently used at the front
	cost  int
	// decoded counts tar-splits decoded on demand (tests).
	decoded int
}

type memoItem struct {
	key  string
	done chan struct{}
	val  any
	err  error
	cost int
	elem *list.Element
	// retry: the producer gave up (cancelled, or the rebuild stopped
	// before the end of the tar-split); a waiter computes it itself.
	retry bool
}

// chainTree is a layer's merged tree and the paths the layer whites out.
type chainTree struct {
	tree   *pathTree
	whited map[string]bool
}

// chains returns the audit's memo.
func (e *Env) chains() *chainMemo {
	e.memoOnce.Do(func() { e.memo = &chainMemo{items: map[string]*memoItem{}} })
	return e.memo
}

// claim makes the caller the producer of key when nobody computes it yet:
// finish must then be called exactly once (keep false: not kept, waiters
// compute it themselves). ok is false when the key is held already.
func (m *chainMemo) claim(key string) (finish func(val any, cost int, err error, keep bool), ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.items[key] != nil {
		return nil, false
	}
	it := &memoItem{key: key, done: make(chan struct{})}
	m.items[key] = it
	return func(val any, cost int, err error, keep bool) {
		m.mu.Lock()
		defer m.mu.Unlock()
		it.val, it.err, it.cost = val, err, cost
		if keep {
			it.elem = m.lru.PushFront(it)
			m.cost += cost
			m.evict(it)
		} else {
			it.retry = true
			if m.items[key] == it {
				delete(m.items, key)
			}
		}
		close(it.done)
	}, true
}

// evict drops the least recently used items over the budget (never keep).
func (m *chainMemo) evict(keep *memoItem) {
	for m.cost > chainBudget {
		e := m.lru.Back()
		if e == nil || e.Value == keep {
			return
		}
		m.drop(e.Value.(*memoItem))
	}
}

func (m *chainMemo) drop(it *memoItem) {
	if it.elem != nil {
		m.lru.Remove(it.elem)
		it.elem = nil
		m.cost -= it.cost
	}
	if m.items[it.key] == it {
		delete(m.items, it.key)
	}
}

// forget drops key if it is kept.
func (m *chainMemo) forget(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if it := m.items[key]; it != nil && it.elem != nil {
		m.drop(it)
	}
}

// get returns key's value, waiting for its producer or computing it.
// compute's keep says whether the outcome lasts (a value, or an error a
// retry would repeat).
func (m *chainMemo) get(ctx context.Context, key string, compute func() (val any, cost int, err error, keep bool)) (any, error) {
	for {
		if finish, ok := m.claim(key); ok {
			val, cost, err, keep := compute()
			finish(val, cost, err, keep)
			return val, err
		}
		m.mu.Lock()
		it := m.items[key]
		m.mu.Unlock()
		if it == nil {
			continue // dropped in between
		}
		select {
		case <-it.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if it.retry {
			continue
		}
		m.mu.Lock()
		if it.elem != nil {
			m.lru.MoveToFront(it.elem)
		}
		m.mu.Unlock()
		return it.val, it.err
	}
}

func deltaKey(digest string) string { return "ops\x00" + digest }
func treeKey(digest string) string  { return "tree\x00" + digest }

// ops returns a chain layer's replay operations: those its own rebuild
// recorded, or its tar-split decoded now.
func (m *chainMemo) ops(ctx context.Context, c ChainLayer) ([]replayOp, error) {
	v, err := m.get(ctx, deltaKey(c.Digest), func() (any, int, error, bool) {
		ops, err := decodeOps(ctx, c.TarSplit)
		m.mu.Lock()
		m.decoded++
		m.mu.Unlock()
		return ops, len(ops), err, ctx.Err() == nil
	})
	if err != nil {
		return nil, err
	}
	return v.([]replayOp), nil
}

// decodeOps decodes a tar-split into its replay operations.
func decodeOps(ctx context.Context, open Opener) ([]replayOp, error) {
	f, err := open()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := tarsplit.Open(f)
	if err != nil {
		return nil, err
	}
	t := newSplitTap(&ctxSource{ctx: ctx, src: r}, nil, true)
	if err := t.drain(); err != nil {
		return nil, err
	}
	return t.ops, nil
}

// ctxSource stops a source when ctx is done.
type ctxSource struct {
	ctx context.Context
	src tarsplit.EntrySource
}

func (c *ctxSource) Next() (*tarsplit.Entry, error) {
	if err := c.ctx.Err(); err != nil {
		return nil, err
	}
	return c.src.Next()
}

// replay returns the tree a full-rootfs layer directory should hold: the
// entries of every tar of the chain, base first, with whiteouts and opaque
// directories applied as go-archive's UnpackLayer applies them (FORMATS 2.4,
// 2.5), each path carrying the header of the layer that last wrote it; the
// paths the layer itself whites out; and its index. The tree is shared:
// read it, never change it.
func (m *chainMemo) replay(ctx context.Context, chain []ChainLayer) (*pathTree, map[string]bool, int, error) {
	if len(chain) > maxChain {
		return nil, nil, 0, errors.New("layer chain too deep")
	}
	for _, c := range chain {
		if c.TarSplit == nil {
			return nil, nil, 0, fmt.Errorf("layer %s below has no usable tar-split", report.Short(c.Digest))
		}
	}
	self := len(chain) - 1
	ct, err := m.tree(ctx, chain, self)
	if err != nil {
		return nil, nil, 0, err
	}
	return ct.tree, ct.whited, self, nil
}

// tree returns the merged tree of chain[:i+1], from its parent's.
func (m *chainMemo) tree(ctx context.Context, chain []ChainLayer, i int) (*chainTree, error) {
	c := chain[i]
	v, err := m.get(ctx, treeKey(c.Digest), func() (any, int, error, bool) {
		var t *pathTree
		if i > 0 {
			parent, err := m.tree(ctx, chain, i-1)
			if err != nil {
				return nil, 0, err, ctx.Err() == nil
			}
			t = parent.tree.clone()
		} else {
			t = newPathTree()
		}
		ops, err := m.ops(ctx, c)
		if err != nil {
			if ctx.Err() != nil {
				return nil, 0, err, false
			}
			return nil, 0, fmt.Errorf("replaying layer %s: %w", report.Short(c.Digest), err), true
		}
		ct := &chainTree{tree: t, whited: map[string]bool{}}
		applyOps(t, ops, i, ct.whited)
		// The tree holds the operations now; they are decoded again
		// only if the tree is dropped.
		m.forget(deltaKey(c.Digest))
		return ct, t.size(), nil, true
	})
	if err != nil {
		return nil, err
	}
	return v.(*chainTree), nil
}

// applyOps applies layer idx's operations to tree; whited collects the
// paths the layer whites out (and does not write again).
func applyOps(tree *pathTree, ops []replayOp, idx int, whited map[string]bool) {
	for _, op := range ops {
		switch op.op {
		case opOpaque:
			if n := tree.lookup(op.path); n != nil {
				for k, c := range n.kids {
					if c.layer != idx {
						delete(n.kids, k)
					}
				}
			}
		case opWhiteout:
			tree.remove(op.path)
			whited[op.path] = true
		case opAdd:
			if n := tree.lookup(op.path); n != nil && n.isDirKind() && op.kind != '5' {
				n.kids = nil // a non-directory replaces a directory and all below it
			}
			n := tree.add(op.path, op.kind, idx)
			n.hdr, n.crc = op.hdr, op.crc
			delete(whited, op.path)
		}
	}
}
