package builtin

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/pkg/operator"
	"github.com/weirstream/weir/pkg/record"
)

// nexEvents runs subtask sub of par of a nexmark source with props to the
// end and returns its records as JSON.
func nexEvents(t *testing.T, props operator.Properties, sub, par int) []string {
	t.Helper()
	src := newSource(t, "nexmark", props)
	if err := src.Open(testCtx("nx", sub, par)); err != nil {
		t.Fatal(err)
	}
	var c collector
	drain(t, src, &c, 10_000)
	return c.out
}

func nexDecode(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	return m
}

func nexInt(t *testing.T, m map[string]any, f string) int64 {
	t.Helper()
	n, ok := m[f].(json.Number)
	if !ok {
		t.Fatalf("field %q of %v is not a number", f, m)
	}
	v, err := n.Int64()
	if err != nil {
		t.Fatalf("field %q of %v: %v", f, m, err)
	}
	return v
}

// TestNexmarkEventMix: per 50 events, 1 person (at 0), 3 auctions (at 1 to
// 3) and 46 bids, with Nexmark's fields in Nexmark's order.
func TestNexmarkEventMix(t *testing.T) {
	out := nexEvents(t, operator.Properties{"events": 150}, 0, 1)
	if len(out) != 150 {
		t.Fatalf("got %d events, want 150", len(out))
	}
	wantFields := map[int64]string{
		nexPerson:  "event_type id name emailAddress creditCard city state dateTime extra",
		nexAuction: "event_type id itemName description initialBid reserve dateTime expires seller category extra",
		nexBid:     "event_type auction bidder price channel url dateTime extra",
	}
	for start := 0; start < 150; start += 50 {
		counts := map[int64]int{}
		for n := start; n < start+50; n++ {
			var r record.Record
			var dec record.Decoder
			if err := dec.DecodeJSON([]byte(out[n]), &r); err != nil {
				t.Fatal(err)
			}
			typ, _ := r.Fields[0].Value.AsInt()
			want := int64(nexBid)
			switch {
			case n%50 == 0:
				want = nexPerson
			case n%50 <= 3:
				want = nexAuction
			}
			if typ != want {
				t.Fatalf("event %d: event_type %d, want %d", n, typ, want)
			}
			counts[typ]++
			var names []string
			for _, f := range r.Fields {
				names = append(names, f.Name)
			}
			if got := strings.Join(names, " "); got != wantFields[typ] {
				t.Fatalf("event %d: fields %q, want %q", n, got, wantFields[typ])
			}
		}
		if counts[nexPerson] != 1 || counts[nexAuction] != 3 || counts[nexBid] != 46 {
			t.Fatalf("events %d..%d: mix %v, want 1:3:46", start, start+49, counts)
		}
	}
}

// TestNexmarkDeterminism: the union over 3 subtasks, by event number, is
// what one subtask emits; another seed gives other events.
func TestNexmarkDeterminism(t *testing.T) {
	props := operator.Properties{"events": 2000, "seed": 7}
	one := nexEvents(t, props, 0, 1)
	if len(one) != 2000 {
		t.Fatalf("got %d events", len(one))
	}
	union := make([]string, 2000)
	for sub := range 3 {
		for k, e := range nexEvents(t, props, sub, 3) {
			n := sub + 3*k
			if n >= 2000 || union[n] != "" {
				t.Fatalf("subtask %d record %d: event %d out of range or twice", sub, k, n)
			}
			union[n] = e
		}
	}
	for n := range one {
		if union[n] != one[n] {
			t.Fatalf("event %d differs:\n p=1 %s\n p=3 %s", n, one[n], union[n])
		}
	}
	other := nexEvents(t, operator.Properties{"events": 2000, "seed": 8}, 0, 1)
	same := 0
	for n := range one {
		if other[n] == one[n] {
			same++
		}
	}
	if same > 10 {
		t.Fatalf("seeds 7 and 8 give %d identical events of 2000", same)
	}
}

// TestNexmarkIDs: persons and auctions are numbered from 1000 without gaps;
// bids and auctions reference persons and auctions created before them or
// at most Nexmark's lead (10) ahead; values are in Nexmark's ranges.
func TestNexmarkIDs(t *testing.T) {
	const events = 20_000
	out := nexEvents(t, operator.Properties{"events": events, "seed": 3}, 0, 1)
	card := regexp.MustCompile(`^[0-9]{4} [0-9]{4} [0-9]{4} [0-9]{4}$`)
	persons, auctions := int64(0), int64(0)
	hotAuction, hotBidder, bids := 0, 0, 0
	for n, s := range out {
		m := nexDecode(t, s)
		if got, want := nexInt(t, m, "dateTime"), nexBaseTime+int64(n)/10; got != want {
			t.Fatalf("event %d: dateTime %d, want %d", n, got, want)
		}
		extra := m["extra"].(string)
		switch nexInt(t, m, "event_type") {
		case nexPerson:
			if id := nexInt(t, m, "id"); id != 1000+persons {
				t.Fatalf("event %d: person id %d, want %d", n, id, 1000+persons)
			}
			persons++
			if !card.MatchString(m["creditCard"].(string)) {
				t.Fatalf("event %d: credit card %q", n, m["creditCard"])
			}
			if !strings.Contains(m["emailAddress"].(string), "@") || !strings.HasSuffix(m["emailAddress"].(string), ".com") {
				t.Fatalf("event %d: email %q", n, m["emailAddress"])
			}
		case nexAuction:
			if id := nexInt(t, m, "id"); id != 1000+auctions {
				t.Fatalf("event %d: auction id %d, want %d", n, id, 1000+auctions)
			}
			auctions++
			if s := nexInt(t, m, "seller") - 1000; s < 0 || s >= persons+nexPersonIDLead {
				t.Fatalf("event %d: seller %d with %d persons", n, s+1000, persons)
			}
			if c := nexInt(t, m, "category"); c < 10 || c > 14 {
				t.Fatalf("event %d: category %d", n, c)
			}
			ts, exp := nexInt(t, m, "dateTime"), nexInt(t, m, "expires")
			if exp <= ts || exp > ts+2*(nexNumInFlightAuction*50/3/10+1) {
				t.Fatalf("event %d: expires %d at %d", n, exp, ts)
			}
			ib, res := nexInt(t, m, "initialBid"), nexInt(t, m, "reserve")
			if ib < 100 || ib > 100_000_000 || res < ib {
				t.Fatalf("event %d: initialBid %d reserve %d", n, ib, res)
			}
			if l := len(m["itemName"].(string)); l > 19 {
				t.Fatalf("event %d: itemName of %d characters", n, l)
			}
			if l := len(m["description"].(string)); l > 99 {
				t.Fatalf("event %d: description of %d characters", n, l)
			}
		case nexBid:
			bids++
			a := nexInt(t, m, "auction") - 1000
			if a < 0 || a >= auctions+nexAuctionIDLead {
				t.Fatalf("event %d: auction %d with %d auctions", n, a+1000, auctions)
			}
			if a%100 == 0 {
				hotAuction++
			}
			b := nexInt(t, m, "bidder") - 1000
			if b < 0 || b >= persons+nexPersonIDLead {
				t.Fatalf("event %d: bidder %d with %d persons", n, b+1000, persons)
			}
			if b%100 == 1 {
				hotBidder++
			}
			if p := nexInt(t, m, "price"); p < 100 || p > 100_000_000 {
				t.Fatalf("event %d: price %d", n, p)
			}
			// Nexmark's nextExtra for a bid: 68 bytes ± 20%.
			if len(extra) < 54 || len(extra) >= 54+28 {
				t.Fatalf("event %d: extra of %d bytes", n, len(extra))
			}
			if !strings.HasPrefix(m["url"].(string), "https://www.nexmark.com/") || m["channel"].(string) == "" {
				t.Fatalf("event %d: channel %q url %q", n, m["channel"], m["url"])
			}
		}
	}
	if persons != events/50 || auctions != 3*events/50 {
		t.Fatalf("%d persons and %d auctions in %d events", persons, auctions, events)
	}
	// Hot auctions are picked 1 time in 2, hot bidders 3 times in 4 (plus
	// the random picks that land on them).
	if f := float64(hotAuction) / float64(bids); f < 0.45 || f > 0.6 {
		t.Fatalf("hot auctions in %.2f of the bids", f)
	}
	if f := float64(hotBidder) / float64(bids); f < 0.7 || f > 0.85 {
		t.Fatalf("hot bidders in %.2f of the bids", f)
	}
}

// TestNexmarkKinds: kinds skips the other event types and keeps the
// numbering; a subtask that can get none of them ends (bounded) or idles
// (unbounded).
func TestNexmarkKinds(t *testing.T) {
	all := nexEvents(t, operator.Properties{"events": 500}, 0, 1)
	var want []string
	for _, e := range all {
		if strings.HasPrefix(e, `{"event_type":2,`) || strings.HasPrefix(e, `{"event_type":0,`) {
			want = append(want, e)
		}
	}
	got := nexEvents(t, operator.Properties{"events": 500, "kinds": []any{"bid", "person"}}, 0, 1)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("kinds [bid, person]: %d records, want the %d of the full stream", len(got), len(want))
	}

	// Subtask 1 of 50 only ever gets event numbers 1 mod 50: auctions.
	if out := nexEvents(t, operator.Properties{"events": 5000, "kinds": []any{"person"}}, 1, 50); len(out) != 0 {
		t.Fatalf("subtask 1 of 50 emitted %d persons", len(out))
	}
	src := newSource(t, "nexmark", operator.Properties{"kinds": []any{"person"}})
	if err := src.Open(testCtx("nx", 1, 50)); err != nil {
		t.Fatal(err)
	}
	var c collector
	if st, wait, err := src.PollNext(&c); st != operator.NothingAvailable || wait != idleRetry || err != nil || len(c.out) != 0 {
		t.Fatalf("unbounded, nothing to emit: %v %v %v, %d records", st, wait, err, len(c.out))
	}
}

// TestNexmarkRestore: a subtask restored from a snapshot taken mid-stream
// emits exactly what the original emitted after it; the snapshot does not
// change as the source goes on.
func TestNexmarkRestore(t *testing.T) {
	props := operator.Properties{"events": 5000, "seed": 11, "kinds": []any{"bid", "auction"}}
	var items [][]byte
	var tails [2][]string
	var snaps [2]string
	for sub := range 2 {
		src := newSource(t, "nexmark", props)
		if err := src.Open(testCtx("nx", sub, 2)); err != nil {
			t.Fatal(err)
		}
		var c collector
		for range 2 {
			if _, _, err := src.PollNext(&c); err != nil {
				t.Fatal(err)
			}
		}
		snap, err := src.(operator.Snapshotter).SnapshotState(1)
		if err != nil {
			t.Fatal(err)
		}
		snaps[sub] = string(snap.Items[0])
		items = append(items, snap.Items...)
		c.out = nil
		drain(t, src, &c, 100)
		tails[sub] = c.out
		if string(snap.Items[0]) != snaps[sub] {
			t.Fatalf("snapshot changed after it was taken")
		}
	}
	for sub := range 2 {
		src := newSource(t, "nexmark", props)
		if err := src.Open(testCtx("nx", sub, 2)); err != nil {
			t.Fatal(err)
		}
		if err := src.(operator.Snapshotter).RestoreState(&operator.RestoredState{CheckpointID: 1, Items: items}); err != nil {
			t.Fatal(err)
		}
		var c collector
		drain(t, src, &c, 100)
		if len(c.out) == 0 || strings.Join(c.out, "\n") != strings.Join(tails[sub], "\n") {
			t.Fatalf("subtask %d: restored emitted %d records, the original %d after the snapshot", sub, len(c.out), len(tails[sub]))
		}
	}
}

func TestNexmarkRestoreErrors(t *testing.T) {
	snapshotOf := func(sub, par int) []byte {
		src := newSource(t, "nexmark", operator.Properties{})
		if err := src.Open(testCtx("nx", sub, par)); err != nil {
			t.Fatal(err)
		}
		s, err := src.(operator.Snapshotter).SnapshotState(1)
		if err != nil {
			t.Fatal(err)
		}
		return s.Items[0]
	}
	for _, tc := range []struct {
		name  string
		items [][]byte
		want  string
	}{
		{"rescaled", [][]byte{snapshotOf(0, 2), snapshotOf(1, 2)},
			"nexmark: restore checkpoint 9: the state was taken at parallelism 2, not 3; a nexmark source cannot be rescaled (restore at parallelism 2)"},
		{"other operator", [][]byte{{2, 1, 0, 0}}, `nexmark: restore checkpoint 9: item 0: not a nexmark item of version 1: "\x02\x01\x00\x00"`},
		{"truncated", [][]byte{{1, 3, 0}}, `nexmark: restore checkpoint 9: item 0: bad event number in nexmark item "\x01\x03\x00"`},
		{"wrong residue", [][]byte{{1, 3, 0, 4}}, `nexmark: restore checkpoint 9: item 0: bad event number in nexmark item "\x01\x03\x00\x04"`},
		{"missing subtask", [][]byte{snapshotOf(1, 3)}, "nexmark: restore checkpoint 9: no position for subtask 0 of 3"},
		{"twice", [][]byte{snapshotOf(0, 3), snapshotOf(0, 3)}, "nexmark: restore checkpoint 9: two positions for subtask 0"},
	} {
		src := newSource(t, "nexmark", operator.Properties{})
		if err := src.Open(testCtx("nx", 0, 3)); err != nil {
			t.Fatal(err)
		}
		err := src.(operator.Snapshotter).RestoreState(&operator.RestoredState{CheckpointID: 9, Items: tc.items})
		if errString(err) != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, errString(err), tc.want)
		}
	}
}

// TestNexmarkRate: the rate limiter releases records by the injected
// clock, and a source that has to wait says so instead of blocking, so
// that the task can cancel it; unbounded, every poll returns a bounded
// batch.
func TestNexmarkRate(t *testing.T) {
	src := newSource(t, "nexmark", operator.Properties{"rate": 1000})
	clock := &fakeClock{}
	src.(*nexmarkSource).now = clock.now
	if err := src.Open(testCtx("nx", 0, 1)); err != nil {
		t.Fatal(err)
	}
	var c collector
	if st, _, err := src.PollNext(&c); st != operator.MoreAvailable || err != nil || len(c.out) != 1 {
		t.Fatalf("first poll: %v %v, %d records", st, err, len(c.out))
	}
	if st, wait, err := src.PollNext(&c); st != operator.NothingAvailable || wait != time.Millisecond || err != nil || len(c.out) != 1 {
		t.Fatalf("second poll at once: %v %v %v, %d records", st, wait, err, len(c.out))
	}
	clock.t += 10 * time.Millisecond
	if _, _, err := src.PollNext(&c); err != nil || len(c.out) != 11 {
		t.Fatalf("10 ms later: %v, %d records, want 11", err, len(c.out))
	}

	unbounded := newSource(t, "nexmark", operator.Properties{})
	if err := unbounded.Open(testCtx("nx", 0, 1)); err != nil {
		t.Fatal(err)
	}
	var d discard
	for i := range 20 {
		before := d.n
		st, _, err := unbounded.PollNext(&d)
		if st != operator.MoreAvailable || err != nil || d.n-before != maxBatch {
			t.Fatalf("poll %d: %v %v, %d records", i, st, err, d.n-before)
		}
	}
	// A failing downstream stops the poll with its error.
	if _, _, err := unbounded.PollNext(&collector{fail: errDownstream}); err != errDownstream {
		t.Fatalf("downstream error: got %v", err)
	}
}

func TestNexmarkNoAllocs(t *testing.T) {
	src := newSource(t, "nexmark", operator.Properties{})
	if err := src.Open(testCtx("nx", 0, 1)); err != nil {
		t.Fatal(err)
	}
	var d discard
	src.PollNext(&d)
	if a := testing.AllocsPerRun(20, func() { src.PollNext(&d) }); a != 0 {
		t.Fatalf("%v allocations per poll of %d events", a, maxBatch)
	}
}

func TestNexmarkProperties(t *testing.T) {
	ty, _ := operator.Lookup("nexmark")
	for _, tc := range []struct {
		props operator.Properties
		want  string
	}{
		{operator.Properties{}, ""},
		{operator.Properties{"events": 10, "rate": 0.5, "seed": -3, "kinds": []any{"bid"}}, ""},
		{operator.Properties{"events": -1}, `property "events": want an integer between 0 and 1000000000000000000, got -1`},
		{operator.Properties{"events": "many"}, `property "events": want an integer, got "many"`},
		{operator.Properties{"events": 1.5}, `property "events": want an integer, got 1.5`},
		{operator.Properties{"rate": -1}, `property "rate": want 0 (unlimited) or records per second between 0.001 and 1000000000, got -1`},
		{operator.Properties{"rate": 1e12}, `property "rate": want 0 (unlimited) or records per second between 0.001 and 1000000000, got 1e+12`},
		{operator.Properties{"rate": "fast"}, `property "rate": want a number, got "fast"`},
		{operator.Properties{"seed": "x"}, `property "seed": want an integer, got "x"`},
		{operator.Properties{"kinds": "bid"}, `property "kinds": want a non-empty list of "person", "auction" and "bid", got "bid"`},
		{operator.Properties{"kinds": []any{}}, `property "kinds": want a non-empty list of "person", "auction" and "bid", got an empty list`},
		{operator.Properties{"kinds": []any{"bid", "bids"}}, `property "kinds": want a non-empty list of "person", "auction" and "bid", got "bids" at index 1`},
		{operator.Properties{"kinds": []any{3}}, `property "kinds": want a non-empty list of "person", "auction" and "bid", got 3 at index 0`},
	} {
		if got := errString(ty.Validate(tc.props)); got != tc.want {
			t.Errorf("%v: got %q, want %q", tc.props, got, tc.want)
		}
	}
}

// BenchmarkNexmark: per-event cost of an unbounded nexmark source with all
// event types, in batches as the task polls it.
func BenchmarkNexmark(b *testing.B) {
	src := newSource(b, "nexmark", operator.Properties{})
	if err := src.Open(testCtx("nx", 0, 1)); err != nil {
		b.Fatal(err)
	}
	var d discard
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for d.n < b.N {
		if _, _, err := src.PollNext(&d); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(d.n), "ns/event")
}
