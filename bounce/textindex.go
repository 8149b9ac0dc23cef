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
	return (uint32(a)<<16 | uint32(b)<<8 | uint32(c)) * 2654435761 >> 18
}

func newTextIndex(text string) *textIndex {
	x := &textIndex{text: text}
	for i := 0; i+2 < len(text); i++ {
		h := trigramHash(text[i], text[i+1], text[i+2])
		x.bits[h>>6] |= 1 << (h & 63)
	}
	return x
}

func (x *textIndex) hasTrigram(s string, i int) bool {
	h := trigramHash(s[i], s[i+1], s[i+2])
	return x.bits[h>>6]&(1<<(h&63)) != 0
}

// mayContain reports whether frag can occur in the text: false is
// certain, true must be confirmed.
func (x *textIndex) mayContain(frag string) bool {
	n := len(frag)
	if n < 3 {
		return true
	}
	return x.hasTrigram(frag, 0) && x.hasTrigram(frag, n-3) && x.hasTrigram(frag, (n-3)/2)
}

// contains reports whether phrase p occurs in the indexed text.
func (x *textIndex) contains(p phrase) bool {
	for _, frag := range p {
		if !x.mayContain(frag) {
			return false
		}
	}
	return p.in(x.text)
}
