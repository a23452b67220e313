//go:build race

package expr

// raceEnabled: the race detector changes what allocates, so tests do not
// hold allocation to a bound under it.
const raceEnabled = true
