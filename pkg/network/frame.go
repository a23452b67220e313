package network

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"unicode/utf8"
)

// Wire format. One connection carries every channel between a consumer's Manager and a producer's Manager; every
// frame names its channel. A frame is a 9-byte header followed by the payload:
//
//	uint32 big-endian payload length | uint8 frame type | uint32 big-endian channel id | payload
//
// The channel id is chosen by the consumer (Flink's InputChannelID): its partition request opens the channel, ids
// increase strictly on a connection, and every later frame of that channel, in both directions, carries it. Id 0 is
// the connection itself: only a producer's connection-level error (busy) uses it.
//
// Payloads by type (all integers big-endian):
//
//	partitionRequest  consumer->producer  uint32 subpartition | uint32 initial credit | partition id (rest, UTF-8)
//	buffer            producer->consumer  uint32 backlog | frames of the buffer (rest)
//	event             producer->consumer  uint32 backlog | event (eventSize bytes)
//	priorityEvent     producer->consumer  uint32 backlog | event (eventSize bytes); sent without credit
//	addCredit         consumer->producer  uint32 credit
//	backlog           producer->consumer  uint32 backlog (sent only while the consumer has no credit)
//	errorFrame        producer->consumer  uint8 code | message (rest, UTF-8); ends the channel (id 0: the connection)
//	cancel            consumer->producer  empty: the consumer released the channel (Flink's CancelPartitionRequest)
//
// A length over the receiver's cap, an unknown type, a payload of the wrong size for its type, a channel id never
// opened on the connection, or a partition request reusing an id is a protocol error: the receiver logs it naming the
// peer and closes the connection, failing its channels. A frame for a channel that was open and has ended (a credit
// or cancel crossing the producer's EndOfPartition, buffers crossing the consumer's cancel) is dropped: both sides end
// a channel without waiting for the other.
const (
	frameHeaderLen = 9

	framePartitionRequest byte = 1
	frameBuffer           byte = 2
	frameEvent            byte = 3
	frameAddCredit        byte = 4
	frameBacklog          byte = 5
	frameError            byte = 6
	framePriorityEvent    byte = 7
	frameCancel           byte = 8

	// maxPendingPriority bounds the priority events a remote channel holds undelivered. They take no credit, so
	// only this cap keeps a hostile producer from filling memory; an honest one sends one per checkpoint, and the
	// gate delivers them even from blocked channels.
	maxPendingPriority = 1024

	// maxPartitionIDLen bounds the partition id in a request (ids are a few dozen bytes).
	maxPartitionIDLen = 1024
	maxRequestLen     = 8 + maxPartitionIDLen
	// maxErrorLen bounds an error frame's payload; longer messages are truncated by the sender.
	maxErrorLen = 4096
	// maxCredit bounds the credit a consumer may announce: far above any sane buffer count, low enough that a
	// hostile peer cannot overflow the counter.
	maxCredit = 1 << 20
	// maxPendingErrors bounds the error frames (answers to failed partition requests) a producer holds for a
	// consumer that does not read them: past it the consumer is not honest, and the connection is closed.
	maxPendingErrors = 1024
)

// Error codes carried by an error frame.
const (
	errCodePartitionNotFound byte = 1 // the consumer retries with backoff until PartitionRequestTimeout
	errCodeReleased          byte = 2 // the producer failed or was released: the channel fails
	errCodeProtocol          byte = 3 // the request was invalid: the channel fails
	errCodeBusy              byte = 4 // too many connections without a request: the consumer retries with backoff
)

var errProtocol = errors.New("network protocol error")

func putHeader(b []byte, typ byte, ch uint32, payloadLen int) {
	binary.BigEndian.PutUint32(b[0:4], uint32(payloadLen))
	b[4] = typ
	binary.BigEndian.PutUint32(b[5:9], ch)
}

// readHeader reads one frame header into scratch (len >= frameHeaderLen) and checks the length against maxLen.
func readHeader(r io.Reader, scratch []byte, maxLen int) (typ byte, ch uint32, length int, err error) {
	if _, err := io.ReadFull(r, scratch[:frameHeaderLen]); err != nil {
		return 0, 0, 0, err
	}
	n := binary.BigEndian.Uint32(scratch[0:4])
	typ = scratch[4]
	ch = binary.BigEndian.Uint32(scratch[5:9])
	if uint64(n) > uint64(maxLen) {
		return typ, ch, 0, fmt.Errorf("%w: frame type %d channel %d length %d exceeds cap %d", errProtocol, typ, ch, n, maxLen)
	}
	return typ, ch, int(n), nil
}

func encodePartitionRequest(ch uint32, id PartitionID, sub, credit int) []byte {
	b := make([]byte, frameHeaderLen+8+len(id))
	putHeader(b, framePartitionRequest, ch, 8+len(id))
	binary.BigEndian.PutUint32(b[frameHeaderLen:], uint32(sub))
	binary.BigEndian.PutUint32(b[frameHeaderLen+4:], uint32(credit))
	copy(b[frameHeaderLen+8:], id)
	return b
}

// consumerFrame is one frame a producer reads: a partition request, a credit or a cancel.
type consumerFrame struct {
	typ       byte
	ch        uint32
	partition PartitionID // request
	sub       int         // request
	credit    int         // request: initial credit; addCredit: the credit added
}

// encode is the frame's wire form (tests and fuzz targets).
func (f consumerFrame) encode() []byte {
	switch f.typ {
	case framePartitionRequest:
		return encodePartitionRequest(f.ch, f.partition, f.sub, f.credit)
	case frameAddCredit:
		return putUint32Frame(make([]byte, frameHeaderLen+4), frameAddCredit, f.ch, f.credit)
	}
	b := make([]byte, frameHeaderLen)
	putHeader(b, f.typ, f.ch, 0)
	return b
}

// readPartitionRequest reads the first frame of a connection to the data server, which must be a partition request.
func readPartitionRequest(r io.Reader, scratch []byte) (consumerFrame, error) {
	f, err := readConsumerFrame(r, scratch)
	if err == nil && f.typ != framePartitionRequest {
		err = fmt.Errorf("%w: first frame has type %d, want a partition request", errProtocol, f.typ)
	}
	return f, err
}

// readConsumerFrame reads one frame a consumer sends: a partition request, an add-credit or a cancel; anything else
// is a protocol error. scratch holds at least frameHeaderLen+4 bytes. It allocates a request's payload only once the
// header has passed its cap, and nothing for the other frames.
func readConsumerFrame(r io.Reader, scratch []byte) (consumerFrame, error) {
	typ, ch, n, err := readHeader(r, scratch, maxRequestLen)
	if err != nil {
		return consumerFrame{}, err
	}
	f := consumerFrame{typ: typ, ch: ch}
	if ch == 0 {
		return f, fmt.Errorf("%w: frame type %d names channel 0", errProtocol, typ)
	}
	switch typ {
	case framePartitionRequest:
		payload := make([]byte, n)
		if _, err := io.ReadFull(r, payload); err != nil {
			return f, err
		}
		f.partition, f.sub, f.credit, err = decodePartitionRequest(payload)
		return f, err
	case frameAddCredit:
		if n != 4 {
			return f, fmt.Errorf("%w: credit frame of %d bytes", errProtocol, n)
		}
		if _, err := io.ReadFull(r, scratch[:4]); err != nil {
			return f, err
		}
		c := binary.BigEndian.Uint32(scratch[:4])
		if c > maxCredit {
			return f, fmt.Errorf("%w: channel %d announces credit %d, more than %d", errProtocol, ch, c, maxCredit)
		}
		f.credit = int(c)
		return f, nil
	case frameCancel:
		if n != 0 {
			return f, fmt.Errorf("%w: cancel frame of %d bytes", errProtocol, n)
		}
		return f, nil
	}
	return f, fmt.Errorf("%w: frame type %d of %d bytes from a consumer", errProtocol, typ, n)
}

func decodePartitionRequest(p []byte) (id PartitionID, sub, credit int, err error) {
	if len(p) < 9 || len(p) > maxRequestLen {
		return "", 0, 0, fmt.Errorf("%w: partition request of %d bytes", errProtocol, len(p))
	}
	s := binary.BigEndian.Uint32(p[0:4])
	c := binary.BigEndian.Uint32(p[4:8])
	if s > 1<<16 || c > maxCredit {
		return "", 0, 0, fmt.Errorf("%w: partition request subpartition %d credit %d out of range", errProtocol, s, c)
	}
	if !utf8.Valid(p[8:]) {
		return "", 0, 0, fmt.Errorf("%w: partition id is not UTF-8", errProtocol)
	}
	return PartitionID(p[8:]), int(s), int(c), nil
}

func encodeError(ch uint32, code byte, msg string) []byte {
	if len(msg) > maxErrorLen-1 {
		msg = msg[:maxErrorLen-1]
	}
	b := make([]byte, frameHeaderLen+1+len(msg))
	putHeader(b, frameError, ch, 1+len(msg))
	b[frameHeaderLen] = code
	copy(b[frameHeaderLen+1:], msg)
	return b
}

func decodeError(p []byte) (code byte, msg string, err error) {
	if len(p) < 1 {
		return 0, "", fmt.Errorf("%w: empty error frame", errProtocol)
	}
	return p[0], string(p[1:]), nil
}

// putUint32Frame writes a header plus a single uint32 payload (addCredit, backlog) into b[:frameHeaderLen+4].
func putUint32Frame(b []byte, typ byte, ch uint32, v int) []byte {
	putHeader(b, typ, ch, 4)
	binary.BigEndian.PutUint32(b[frameHeaderLen:frameHeaderLen+4], uint32(v))
	return b[:frameHeaderLen+4]
}

// EventType names an in-band event. Events travel in order with the data of their channel.
type EventType uint8

const (
	// EndOfPartition is the last element of every subpartition; after it on every channel the gate returns io.EOF.
	EndOfPartition EventType = 1
	// CheckpointBarrier carries CheckpointID, Timestamp and Flags (checkpoint options, e.g. unaligned/savepoint).
	CheckpointBarrier EventType = 2
	// CancelCheckpointMarker tells the consumer to abort alignment of CheckpointID.
	CancelCheckpointMarker EventType = 3
	// EndOfData: the producer emits no more records (bounded input finished) but may still take checkpoints.
	EndOfData EventType = 4
	// Watermark is reserved (Timestamp would carry it); not yet produced by anyone.
	Watermark EventType = 5
)

func (t EventType) String() string {
	switch t {
	case EndOfPartition:
		return "EndOfPartition"
	case CheckpointBarrier:
		return "CheckpointBarrier"
	case CancelCheckpointMarker:
		return "CancelCheckpointMarker"
	case EndOfData:
		return "EndOfData"
	case Watermark:
		return "Watermark"
	}
	return fmt.Sprintf("EventType(%d)", uint8(t))
}

// Event is an in-band control element. Its encoding is fixed: type(1) checkpointID(8) timestamp(8) flags(4).
type Event struct {
	Type         EventType
	CheckpointID int64
	Timestamp    int64
	Flags        uint32
}

const eventSize = 21

func (e Event) encode(b []byte) {
	b[0] = byte(e.Type)
	binary.BigEndian.PutUint64(b[1:9], uint64(e.CheckpointID))
	binary.BigEndian.PutUint64(b[9:17], uint64(e.Timestamp))
	binary.BigEndian.PutUint32(b[17:21], e.Flags)
}

func decodeEvent(b []byte) (Event, error) {
	if len(b) != eventSize {
		return Event{}, fmt.Errorf("%w: event of %d bytes, want %d", errProtocol, len(b), eventSize)
	}
	t := EventType(b[0])
	if t < EndOfPartition || t > Watermark {
		return Event{}, fmt.Errorf("%w: unknown event type %d", errProtocol, b[0])
	}
	return Event{
		Type:         t,
		CheckpointID: int64(binary.BigEndian.Uint64(b[1:9])),
		Timestamp:    int64(binary.BigEndian.Uint64(b[9:17])),
		Flags:        binary.BigEndian.Uint32(b[17:21]),
	}, nil
}

// Record framing inside a buffer: uvarint(len(record)) | record, repeated. A record never spans two buffers.

var (
	errMalformedLength = errors.New("network: malformed record length prefix")
	errTruncatedRecord = errors.New("network: record extends past the end of the buffer")
)

// uvarintLen is the size of binary.PutUvarint's encoding of x.
func uvarintLen(x uint64) int { return (bits.Len64(x|1) + 6) / 7 }

// NextRecord splits the first record off frames (a Buffer's Data()). Call it while len(frames) > 0; on empty input
// it returns io.EOF. A malformed or truncated frame returns an error, never a panic. It does not allocate: rec
// aliases frames.
func NextRecord(frames []byte) (rec, rest []byte, err error) {
	if len(frames) == 0 {
		return nil, nil, io.EOF
	}
	var n uint64
	var k int
	if frames[0] < 0x80 { // records under 128 bytes: skip the general decoder
		n, k = uint64(frames[0]), 1
	} else if n, k = binary.Uvarint(frames); k <= 0 {
		return nil, nil, errMalformedLength
	}
	if n > uint64(len(frames)-k) {
		return nil, nil, errTruncatedRecord
	}
	end := k + int(n)
	return frames[k:end:end], frames[end:], nil
}
