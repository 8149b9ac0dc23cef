package bounce

// textIndex is a bit set of the trigrams (three-byte sequences) of a
// text. Testing a phrase against it first lets most of the hundreds of
// phrases of the rule table be rejected without scanning the text: a
// fragment one of whose sampled trigrams is absent cannot occur.
type textIndex struct {
	text string
	bits [1 << 8]uint64 // 16384 bits
}

func trigramHash(a, b, c byte) uint32 {
	return (uint32(a)<<16 | uint32(b)<<8 | uint32(c)) * 2654435761 >> 18 // 14 bits
}

func newTextIndex(text string) *textIndex {
	x := &textIndex{text: text}
	for i := 0; i+2 < len(text); i++ {
		h := trigramHash(text[i], text[i+1], text[i+2])
		x.bits[h>>6] |= 1 << (h & 63)
	}
	return x
}

func (x *textIndex) has(h uint32) bool {
	return x.bits[h>>6]&(1<<(h&63)) != 0
}

// contains reports whether phrase p occurs in the indexed text. A
// fragment one of whose sampled trigrams is absent cannot occur, which
// settles most phrases without scanning the text.
func (x *textIndex) contains(p phrase) bool {
	for i, frag := range p.frags {
		if len(frag) >= 3 {
			g := p.grams[i]
			if !x.has(g[0]) || !x.has(g[1]) || !x.has(g[2]) {
				return false
			}
		}
	}
	return p.in(x.text)
}
