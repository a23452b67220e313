package builtin

import (
	"math"
	"math/bits"
	"strconv"
	"strings"
	"sync"

	"github.com/weirstream/weir/pkg/record"
)

// The Nexmark model, as the flink-nexmark generator (github.com/nexmark/nexmark,
// GeneratorConfig and the Person/Auction/Bid generators) defines it with its
// default configuration. Event number n (0-based, over the whole job) is a
// person when n mod 50 is 0, an auction when it is 1 to 3 and a bid
// otherwise; ids are derived from n, so that they need no state.
const (
	nexPersonProportion  = 1
	nexAuctionProportion = 3
	nexTotalProportion   = 50 // persons + auctions + bids (46)

	nexFirstPersonID   = 1000
	nexFirstAuctionID  = 1000
	nexFirstCategoryID = 10
	nexNumCategories   = 5

	nexNumActivePeople    = 1000
	nexNumInFlightAuction = 100
	nexPersonIDLead       = 10
	nexAuctionIDLead      = 10

	// Nexmark's hot ratios: 1 in ratio picks at random, the others pick
	// the hot id (the latest multiple of 100).
	nexHotSellersRatio = 4
	nexHotAuctionRatio = 2
	nexHotBiddersRatio = 4
	nexHotIDGroup      = 100 // HOT_SELLER_RATIO, HOT_AUCTION_RATIO, HOT_BIDDER_RATIO of the generators

	nexHotChannelsRatio = 2
	nexNumChannels      = 10_000

	nexAvgPersonBytes  = 200
	nexAvgAuctionBytes = 500
	nexAvgBidBytes     = 100

	// Event time: Nexmark's default first-event-rate, 10,000 events per
	// second of event time, so dateTime advances 1 ms every 10 events.
	nexEventsPerMs = 10
	// nexBaseTime is the dateTime of event 0: 2024-01-01T00:00:00Z in epoch
	// milliseconds. Nexmark takes the wall clock at start; a fixed base
	// keeps every event a function of (seed, event number).
	nexBaseTime = 1_704_067_200_000

	nexMinStringLen = 3
)

// Event types, as Nexmark's Event.Type values.
const (
	nexPerson  = 0
	nexAuction = 1
	nexBid     = 2
)

// nexKind returns the event type of event number n.
func nexKind(n int64) int {
	switch r := n % nexTotalProportion; {
	case r < nexPersonProportion:
		return nexPerson
	case r < nexPersonProportion+nexAuctionProportion:
		return nexAuction
	}
	return nexBid
}

// nexLastPerson is the base-0 id of the last person created at or before
// event n (lastBase0PersonId).
func nexLastPerson(n int64) int64 {
	epoch, off := n/nexTotalProportion, n%nexTotalProportion
	if off >= nexPersonProportion {
		off = nexPersonProportion - 1
	}
	return epoch*nexPersonProportion + off
}

// nexLastAuction is the base-0 id of the last auction created at or before
// event n (lastBase0AuctionId); -1 before the first one.
func nexLastAuction(n int64) int64 {
	epoch, off := n/nexTotalProportion, n%nexTotalProportion
	switch {
	case off < nexPersonProportion:
		epoch--
		off = nexAuctionProportion - 1
	case off >= nexPersonProportion+nexAuctionProportion:
		off = nexAuctionProportion - 1
	default:
		off -= nexPersonProportion
	}
	return epoch*nexAuctionProportion + off
}

// nexTime is the dateTime of event n (timestampForEvent).
func nexTime(n int64) int64 { return nexBaseTime + n/nexEventsPerMs }

// nexRand is splitmix64, reseeded per event from (seed, event number), so
// that an event's values depend on nothing else: not on the parallelism,
// the events before it, or a restore.
type nexRand struct{ s uint64 }

func mix64(z uint64) uint64 {
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

func (r *nexRand) reset(seed, n int64) {
	r.s = mix64(uint64(seed)^0x6a09e667f3bcc909) ^ mix64(uint64(n)+0x9e3779b97f4a7c15)
}

func (r *nexRand) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	return mix64(r.s)
}

// intN returns a value in [0, n), n > 0 (Lemire's multiply; the bias is
// below 2^-40 for Nexmark's bounds).
func (r *nexRand) intN(n int64) int64 {
	hi, _ := bits.Mul64(r.next(), uint64(n))
	return int64(hi)
}

func (r *nexRand) float() float64 { return float64(r.next()>>11) * 0x1p-53 }

// nexPools are the strings events take their random text from, built once
// per process from a fixed seed: Nexmark builds its random strings per
// event, which would cost an allocation per record here, so weir takes
// substrings of fixed random text instead (Nexmark itself does that for
// `extra`) and picks emails and credit cards from fixed pools.
type nexPools struct {
	extra    string // Nexmark's REUSABLE_EXTRA_STRING: 1 MiB of a-z
	text     string // characters as nextString draws them: a-z, ' ' 1 in 13
	names    []string
	emails   []string
	cards    string // 4-digit groups, each followed by a space
	hotURLs  [4]string
	channels [nexNumChannels]string
	urls     [nexNumChannels]string
}

const (
	nexExtraPoolLen = 1 << 20
	nexTextPoolLen  = 1 << 16
	nexEmailPool    = 1 << 14
	nexCardGroups   = 1 << 16
)

var (
	nexStates    = []string{"AZ", "CA", "ID", "OR", "WA", "WY"}
	nexCities    = []string{"Phoenix", "Los Angeles", "San Francisco", "Boise", "Portland", "Bend", "Redmond", "Seattle", "Kent", "Cheyenne"}
	nexFirst     = []string{"Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter"}
	nexLast      = []string{"Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris"}
	nexHotChans  = [4]string{"Google", "Facebook", "Baidu", "Apple"}
	nexPoolsOnce = sync.OnceValue(buildNexPools)
)

// genString is Nexmark's nextString: 3 to maxLen-1 characters, each a-z or,
// 1 in 13, special; trimmed of spaces.
func genString(r *nexRand, maxLen int64, special byte) string {
	n := nexMinStringLen + r.intN(maxLen-nexMinStringLen)
	b := make([]byte, n)
	for i := range b {
		if r.intN(13) == 0 {
			b[i] = special
		} else {
			b[i] = byte('a' + r.intN(26))
		}
	}
	return strings.TrimSpace(string(b))
}

func buildNexPools() *nexPools {
	r := &nexRand{}
	r.reset(-1, -1)
	p := &nexPools{}
	b := make([]byte, nexExtraPoolLen)
	for i := range b {
		b[i] = byte('a' + r.intN(26))
	}
	p.extra = string(b)
	b = make([]byte, nexTextPoolLen)
	for i := range b {
		if r.intN(13) == 0 {
			b[i] = ' '
		} else {
			b[i] = byte('a' + r.intN(26))
		}
	}
	p.text = string(b)
	for _, f := range nexFirst {
		for _, l := range nexLast {
			p.names = append(p.names, f+" "+l)
		}
	}
	p.emails = make([]string, nexEmailPool)
	for i := range p.emails {
		p.emails[i] = genString(r, 7, ' ') + "@" + genString(r, 5, ' ') + ".com"
	}
	var cb strings.Builder
	cb.Grow(5 * nexCardGroups)
	for range nexCardGroups {
		d := r.intN(10000)
		cb.WriteString(strconv.Itoa(int(10000 + d))[1:]) // %04d
		cb.WriteByte(' ')
	}
	p.cards = cb.String()
	baseURL := func() string {
		return "https://www.nexmark.com/" + genString(r, 5, '_') + "/" + genString(r, 5, '_') + "/" + genString(r, 5, '_') + "/item.htm?query=1"
	}
	for i := range p.hotURLs {
		p.hotURLs[i] = baseURL()
	}
	for i := range p.urls {
		u := baseURL()
		if r.intN(10) > 0 {
			// Java's Math.abs(Integer.reverse(i)).
			v := int64(int32(bits.Reverse32(uint32(i))))
			if v < 0 {
				v = -v
			}
			u += "&channel_id=" + strconv.FormatInt(v, 10)
		}
		p.urls[i] = u
		p.channels[i] = "channel-" + strconv.Itoa(i)
	}
	return p
}

// nexGen builds the record of an event into a reused record: strings are
// substrings of the pools, so building allocates nothing.
type nexGen struct {
	seed  int64
	pools *nexPools
	r     nexRand
}

func (g *nexGen) price() int64 {
	return int64(math.Round(math.Pow(10, g.r.float()*6) * 100))
}

// text is nextString(maxLen) as a substring of the text pool.
func (g *nexGen) text(maxLen int64) string {
	n := nexMinStringLen + g.r.intN(maxLen-nexMinStringLen)
	off := g.r.intN(int64(len(g.pools.text)) - n)
	return strings.TrimSpace(g.pools.text[off : off+n])
}

// extra is nextExtra: padding so that an event's size averages avg bytes,
// within ±20%.
func (g *nexGen) extra(size, avg int) string {
	if size > avg {
		return ""
	}
	avg -= size
	delta := int64(math.Round(float64(avg) * 0.2))
	n := int64(avg) - delta
	if delta != 0 {
		n += g.r.intN(2 * delta)
	}
	off := g.r.intN(int64(len(g.pools.extra)) - n)
	return g.pools.extra[off : off+n]
}

// nextPerson is nextBase0PersonId: a recent person, or one of the next few.
func (g *nexGen) nextPerson(n int64) int64 {
	people := nexLastPerson(n) + 1
	active := min(people, nexNumActivePeople)
	return people - active + g.r.intN(active+nexPersonIDLead)
}

// nextAuction is nextBase0AuctionId: one of the auctions in flight, or of
// the next few.
func (g *nexGen) nextAuction(n int64) int64 {
	last := nexLastAuction(n)
	lo := max(last-nexNumInFlightAuction, 0)
	return lo + g.r.intN(last-lo+1+nexAuctionIDLead)
}

// build makes rec the event n.
func (g *nexGen) build(n int64, rec *record.Record) {
	g.r.reset(g.seed, n)
	ts := nexTime(n)
	f := rec.Fields[:0]
	switch nexKind(n) {
	case nexPerson:
		name := g.pools.names[g.r.intN(int64(len(g.pools.names)))]
		email := g.pools.emails[g.r.intN(int64(len(g.pools.emails)))]
		c := 5 * g.r.intN(nexCardGroups-3)
		card := g.pools.cards[c : c+19]
		city := nexCities[g.r.intN(int64(len(nexCities)))]
		state := nexStates[g.r.intN(int64(len(nexStates)))]
		extra := g.extra(8+len(name)+len(email)+len(card)+len(city)+len(state), nexAvgPersonBytes)
		f = append(f,
			record.Field{Name: "event_type", Value: record.Int(nexPerson)},
			record.Field{Name: "id", Value: record.Int(nexLastPerson(n) + nexFirstPersonID)},
			record.Field{Name: "name", Value: record.String(name)},
			record.Field{Name: "emailAddress", Value: record.String(email)},
			record.Field{Name: "creditCard", Value: record.String(card)},
			record.Field{Name: "city", Value: record.String(city)},
			record.Field{Name: "state", Value: record.String(state)},
			record.Field{Name: "dateTime", Value: record.Int(ts)},
			record.Field{Name: "extra", Value: record.String(extra)})
	case nexAuction:
		var seller int64
		if g.r.intN(nexHotSellersRatio) > 0 {
			seller = nexLastPerson(n) / nexHotIDGroup * nexHotIDGroup
		} else {
			seller = g.nextPerson(n)
		}
		category := nexFirstCategoryID + g.r.intN(nexNumCategories)
		initial := g.price()
		// numInFlightAuctions auctions' worth of events ahead, twice.
		horizon := nexTime(n+nexNumInFlightAuction*nexTotalProportion/nexAuctionProportion) - ts
		expires := ts + 1 + g.r.intN(max(2*horizon, 1))
		item := g.text(20)
		desc := g.text(100)
		reserve := initial + g.price()
		extra := g.extra(8+len(item)+len(desc)+40, nexAvgAuctionBytes)
		f = append(f,
			record.Field{Name: "event_type", Value: record.Int(nexAuction)},
			record.Field{Name: "id", Value: record.Int(nexLastAuction(n) + nexFirstAuctionID)},
			record.Field{Name: "itemName", Value: record.String(item)},
			record.Field{Name: "description", Value: record.String(desc)},
			record.Field{Name: "initialBid", Value: record.Int(initial)},
			record.Field{Name: "reserve", Value: record.Int(reserve)},
			record.Field{Name: "dateTime", Value: record.Int(ts)},
			record.Field{Name: "expires", Value: record.Int(expires)},
			record.Field{Name: "seller", Value: record.Int(seller + nexFirstPersonID)},
			record.Field{Name: "category", Value: record.Int(category)},
			record.Field{Name: "extra", Value: record.String(extra)})
	default:
		var auction, bidder int64
		if g.r.intN(nexHotAuctionRatio) > 0 {
			auction = nexLastAuction(n) / nexHotIDGroup * nexHotIDGroup
		} else {
			auction = g.nextAuction(n)
		}
		if g.r.intN(nexHotBiddersRatio) > 0 {
			bidder = nexLastPerson(n)/nexHotIDGroup*nexHotIDGroup + 1
		} else {
			bidder = g.nextPerson(n)
		}
		price := g.price()
		var channel, url string
		if g.r.intN(nexHotChannelsRatio) > 0 {
			i := g.r.intN(int64(len(nexHotChans)))
			channel, url = nexHotChans[i], g.pools.hotURLs[i]
		} else {
			i := g.r.intN(nexNumChannels)
			channel, url = g.pools.channels[i], g.pools.urls[i]
		}
		f = append(f,
			record.Field{Name: "event_type", Value: record.Int(nexBid)},
			record.Field{Name: "auction", Value: record.Int(auction + nexFirstAuctionID)},
			record.Field{Name: "bidder", Value: record.Int(bidder + nexFirstPersonID)},
			record.Field{Name: "price", Value: record.Int(price)},
			record.Field{Name: "channel", Value: record.String(channel)},
			record.Field{Name: "url", Value: record.String(url)},
			record.Field{Name: "dateTime", Value: record.Int(ts)},
			record.Field{Name: "extra", Value: record.String(g.extra(32, nexAvgBidBytes))})
	}
	rec.Fields = f
}
