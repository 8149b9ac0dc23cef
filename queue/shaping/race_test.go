//go:build race

package shaping

const raceEnabled = true
