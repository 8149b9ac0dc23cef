package resolve

import (
	"container/list"
	"sync"
	"time"
)

type cacheKey struct {
	name  string
	qtype uint16
}

// cache is a bounded LRU map of answers that honours their expiry.
type cache struct {
	mu    sync.Mutex
	size  int // <= 0: no caching
	items map[cacheKey]*list.Element
	lru   list.List // of *cacheEntry, most recently used first
}

type cacheEntry struct {
	key cacheKey
	ans *answer
}

func newCache(size int) *cache {
	return &cache{size: size, items: make(map[cacheKey]*list.Element)}
}

// get returns the answer for key unless it is missing or expired at now.
func (c *cache) get(key cacheKey, now time.Time) (*answer, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if !ok {
		return nil, false
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.ans.expires) {
		c.lru.Remove(el)
		delete(c.items, key)
		return nil, false
	}
	c.lru.MoveToFront(el)
	return e.ans, true
}

// put stores ans under key, dropping the least recently used answer when
// the cache is full.
func (c *cache) put(key cacheKey, ans *answer) {
	if c.size <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		el.Value.(*cacheEntry).ans = ans
		c.lru.MoveToFront(el)
		return
	}
	c.items[key] = c.lru.PushFront(&cacheEntry{key, ans})
	if c.lru.Len() > c.size {
		oldest := c.lru.Back()
		c.lru.Remove(oldest)
		delete(c.items, oldest.Value.(*cacheEntry).key)
	}
}
