package main

// A passive tap on one tunnel's websocket connection: it parses the
// websocket frames crossing the (decrypted) byte stream in both directions
// and counts the remotedialer messages in them, per session and per
// connection id. remotedialer exposes none of this, and tests need it: did
// our session send Pause, did the agent send SyncConnections, which Error
// text closed a stream.
//
// The tap never changes a byte; it only looks at the first bytes of every
// message (the remotedialer header and a short payload prefix).

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"time"
)

const (
	wsOpContinuation = 0x0
	wsOpText         = 0x1
	wsOpBinary       = 0x2
	wsOpClose        = 0x8
	wsOpPing         = 0x9
	wsOpPong         = 0xa

	// tapPrefixCap is how much of each message the tap keeps: the header
	// (at most 4 varints) plus enough payload for Connect addresses, Error
	// texts and a SyncConnections list of 60 ids.
	tapPrefixCap = 512
	// maxTrackedConns bounds the per-connection table of one session.
	maxTrackedConns = 100000
	// unclaimedConnTTL is how long a finished, unclaimed connection stays
	// in the table (so that late lookups still find it).
	unclaimedConnTTL = 30 * time.Second
)

// remotedialer message types, by number.
var messageTypeNames = [...]string{"Invalid", "Data", "Connect", "Error", "AddClient", "RemoveClient", "Pause", "Resume", "SyncConnections"}

const (
	rdData            = 1
	rdConnect         = 2
	rdError           = 3
	rdPause           = 6
	rdResume          = 7
	rdSyncConnections = 8
)

// frameScanner follows the websocket frames in one direction of a byte
// stream, optionally after skipping an HTTP head (request or response).
type frameScanner struct {
	skipHTTP bool
	httpTail uint32

	hdr     [14]byte
	hdrLen  int
	hdrNeed int

	inPayload bool
	remaining uint64
	masked    bool
	mask      [4]byte
	maskPos   uint64
	opcode    byte
	fin       bool

	msgOpcode byte
	msgLen    uint64
	prefix    []byte

	onMessage func(opcode byte, prefix []byte, total uint64)
	onControl func(opcode byte)
}

func (f *frameScanner) feed(p []byte) {
	for len(p) > 0 {
		if f.skipHTTP {
			for i, b := range p {
				f.httpTail = f.httpTail<<8 | uint32(b)
				if f.httpTail == 0x0d0a0d0a {
					f.skipHTTP = false
					p = p[i+1:]
					break
				}
			}
			if f.skipHTTP {
				return
			}
			continue
		}
		if !f.inPayload {
			need := 2
			if f.hdrLen >= 2 {
				need = f.hdrNeed
			}
			n := copy(f.hdr[f.hdrLen:need], p)
			f.hdrLen += n
			p = p[n:]
			if f.hdrLen < need {
				return
			}
			if f.hdrLen == 2 {
				f.hdrNeed = 2
				switch f.hdr[1] & 0x7f {
				case 126:
					f.hdrNeed += 2
				case 127:
					f.hdrNeed += 8
				}
				if f.hdr[1]&0x80 != 0 {
					f.hdrNeed += 4
				}
				if f.hdrNeed > 2 {
					continue
				}
			}
			f.startFrame()
			continue
		}
		n := uint64(len(p))
		if n > f.remaining {
			n = f.remaining
		}
		if f.opcode < wsOpClose && len(f.prefix) < tapPrefixCap {
			keep := min(int(n), tapPrefixCap-len(f.prefix))
			for i := 0; i < keep; i++ {
				b := p[i]
				if f.masked {
					b ^= f.mask[(f.maskPos+uint64(i))%4]
				}
				f.prefix = append(f.prefix, b)
			}
		}
		if f.opcode < wsOpClose {
			f.msgLen += n
		}
		f.maskPos += n
		f.remaining -= n
		p = p[n:]
		if f.remaining == 0 {
			f.endFrame()
		}
	}
}

func (f *frameScanner) startFrame() {
	h := f.hdr[:f.hdrLen]
	f.fin = h[0]&0x80 != 0
	f.opcode = h[0] & 0x0f
	f.masked = h[1]&0x80 != 0
	length := uint64(h[1] & 0x7f)
	off := 2
	switch length {
	case 126:
		length = uint64(binary.BigEndian.Uint16(h[2:4]))
		off = 4
	case 127:
		length = binary.BigEndian.Uint64(h[2:10])
		off = 10
	}
	if f.masked {
		copy(f.mask[:], h[off:off+4])
	}
	f.maskPos = 0
	f.remaining = length
	f.hdrLen = 0
	if f.opcode == wsOpText || f.opcode == wsOpBinary {
		f.msgOpcode = f.opcode
		f.msgLen = 0
		f.prefix = f.prefix[:0]
	}
	f.inPayload = true
	if length == 0 {
		f.endFrame()
	}
}

func (f *frameScanner) endFrame() {
	f.inPayload = false
	if f.opcode >= wsOpClose {
		if f.onControl != nil {
			f.onControl(f.opcode)
		}
		return
	}
	if f.fin && f.onMessage != nil {
		f.onMessage(f.msgOpcode, f.prefix, f.msgLen)
	}
}

// wireDir counts what crossed in one direction.
type wireDir struct {
	Messages     map[string]int64 `json:"messages"`
	DataBytes    int64            `json:"dataBytes"`
	Pings        int64            `json:"pings"`
	Pongs        int64            `json:"pongs"`
	Closes       int64            `json:"closes"`
	TextMessages int64            `json:"textMessages"`
	counts       [len(messageTypeNames) + 1]int64
}

// connWire is what crossed for one remotedialer connection id.
type connWire struct {
	ID        int64    `json:"connId"`
	Address   string   `json:"address"`
	DataIn    int64    `json:"dataBytesIn"`
	DataOut   int64    `json:"dataBytesOut"`
	MsgsIn    int64    `json:"dataMessagesIn"`
	MsgsOut   int64    `json:"dataMessagesOut"`
	PauseIn   int      `json:"pausesIn"`
	PauseOut  int      `json:"pausesOut"`
	ResumeIn  int      `json:"resumesIn"`
	ResumeOut int      `json:"resumesOut"`
	ErrorsIn  []string `json:"errorsIn"`
	ErrorsOut []string `json:"errorsOut"`

	claimed  bool
	endedAt  time.Time
	notifyCh chan struct{}
}

// wireTap is the tap of one websocket session.
type wireTap struct {
	mu       sync.Mutex
	in, out  wireDir
	conns    map[int64]*connWire
	lastSync []int64
	syncAt   time.Time
	readErr  error
	// onMessage, if set, is told about every decoded message (under the
	// tap's lock: it must not block).
	onMessage func(out bool, typ int64)
}

func newWireTap() *wireTap {
	return &wireTap{conns: map[int64]*connWire{}}
}

type wireView struct {
	In                  wireDir `json:"in"`
	Out                 wireDir `json:"out"`
	LastSyncConnections []int64 `json:"lastSyncConnections"`
	LastSyncAt          any     `json:"lastSyncAt"`
	OpenConns           int     `json:"trackedConns"`
}

func (d wireDir) view() wireDir {
	d.Messages = map[string]int64{}
	for i, name := range messageTypeNames {
		if d.counts[i] != 0 {
			d.Messages[name] = d.counts[i]
		}
	}
	if n := d.counts[len(messageTypeNames)]; n != 0 {
		d.Messages["Unknown"] = n
	}
	return d
}

func (t *wireTap) view() wireView {
	t.mu.Lock()
	defer t.mu.Unlock()
	v := wireView{
		In:                  t.in.view(),
		Out:                 t.out.view(),
		LastSyncConnections: append([]int64{}, t.lastSync...),
		OpenConns:           len(t.conns),
	}
	if !t.syncAt.IsZero() {
		v.LastSyncAt = t.syncAt
	}
	return v
}

func (t *wireTap) control(out bool, opcode byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	d := &t.in
	if out {
		d = &t.out
	}
	switch opcode {
	case wsOpPing:
		d.Pings++
	case wsOpPong:
		d.Pongs++
	case wsOpClose:
		d.Closes++
	}
}

// message decodes the header of one websocket message the way
// remotedialer's newServerMessage does and updates the counters.
func (t *wireTap) message(out bool, opcode byte, prefix []byte, total uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	d := &t.in
	if out {
		d = &t.out
	}
	if opcode == wsOpText {
		d.TextMessages++
		return
	}
	r := bytes.NewReader(prefix)
	_, err1 := binary.ReadVarint(r)
	connID, err2 := binary.ReadVarint(r)
	typ, err3 := binary.ReadVarint(r)
	if err1 != nil || err2 != nil || err3 != nil {
		d.counts[0]++
		return
	}
	if typ == rdData || typ == rdConnect {
		if _, err := binary.ReadVarint(r); err != nil {
			d.counts[0]++
			return
		}
	}
	hdrLen := uint64(len(prefix) - r.Len())
	payload := prefix[hdrLen:]
	payloadLen := int64(total - hdrLen)
	if typ > 0 && int(typ) < len(messageTypeNames) {
		d.counts[typ]++
	} else {
		d.counts[len(messageTypeNames)]++
	}
	if t.onMessage != nil {
		t.onMessage(out, typ)
	}
	switch typ {
	case rdData:
		d.DataBytes += payloadLen
		if c := t.conns[connID]; c != nil {
			if out {
				c.DataOut += payloadLen
				c.MsgsOut++
			} else {
				c.DataIn += payloadLen
				c.MsgsIn++
			}
		}
	case rdConnect:
		address := string(payload)
		if i := bytes.IndexByte(payload, '/'); i >= 0 {
			address = string(payload[i+1:])
		}
		t.sweepLocked()
		if len(t.conns) < maxTrackedConns {
			t.conns[connID] = &connWire{ID: connID, Address: address, notifyCh: make(chan struct{}, 1)}
		}
	case rdError:
		if c := t.conns[connID]; c != nil {
			text := string(payload[:min(len(payload), 100)])
			if out {
				c.ErrorsOut = appendCapped(c.ErrorsOut, text)
			} else {
				c.ErrorsIn = appendCapped(c.ErrorsIn, text)
			}
			if len(c.ErrorsIn) > 0 && len(c.ErrorsOut) > 0 && c.endedAt.IsZero() {
				c.endedAt = time.Now()
			}
			c.notify()
		}
	case rdPause, rdResume:
		if c := t.conns[connID]; c != nil {
			switch {
			case typ == rdPause && out:
				c.PauseOut++
			case typ == rdPause:
				c.PauseIn++
			case out:
				c.ResumeOut++
			default:
				c.ResumeIn++
			}
			c.notify()
		}
	case rdSyncConnections:
		ids := make([]int64, 0, len(payload)/8)
		for i := 0; i+8 <= len(payload); i += 8 {
			ids = append(ids, int64(binary.LittleEndian.Uint64(payload[i:])))
		}
		t.lastSync = ids
		t.syncAt = time.Now().UTC()
	}
}

func appendCapped(list []string, s string) []string {
	if len(list) >= 8 {
		return list
	}
	return append(list, s)
}

func (c *connWire) notify() {
	select {
	case c.notifyCh <- struct{}{}:
	default:
	}
}

// sweepLocked drops finished connections nobody claimed.
func (t *wireTap) sweepLocked() {
	if len(t.conns) < 1024 {
		return
	}
	now := time.Now()
	for id, c := range t.conns {
		if !c.claimed && !c.endedAt.IsZero() && now.Sub(c.endedAt) > unclaimedConnTTL {
			delete(t.conns, id)
		}
	}
}

// claim hands the per-connection counters of a connection this process
// opened to its owner; nil if the tap did not see it (or it was claimed).
func (t *wireTap) claim(connID int64, address string) *connWire {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.conns[connID]
	if c == nil || c.claimed || c.Address != address {
		return nil
	}
	c.claimed = true
	return c
}

// release forgets a claimed connection.
func (t *wireTap) release(c *connWire) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conns[c.ID] == c {
		delete(t.conns, c.ID)
	}
}

// snapshot returns a copy of a connection's counters.
func (t *wireTap) snapshot(c *connWire) connWire {
	t.mu.Lock()
	defer t.mu.Unlock()
	cp := *c
	cp.ErrorsIn = append([]string{}, c.ErrorsIn...)
	cp.ErrorsOut = append([]string{}, c.ErrorsOut...)
	return cp
}

func (t *wireTap) noteReadErr(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.readErr == nil {
		t.readErr = err
	}
}

func (t *wireTap) firstReadErr() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.readErr
}

// tapConn is a net.Conn that feeds everything it reads and writes to a tap.
type tapConn struct {
	net.Conn
	r           io.Reader
	tap         *wireTap
	inScan      frameScanner
	outScan     frameScanner
	wmu         sync.Mutex
	firstRead   sync.Once
	onFirstRead func()
}

// newTapConn taps conn. Reads come from r (the hijacked bufio.Reader, which
// may hold bytes the HTTP server read ahead) or from conn when r is nil.
// skipInHTTP/skipOutHTTP skip an HTTP head before the frames start.
func newTapConn(conn net.Conn, r io.Reader, tap *wireTap, skipInHTTP, skipOutHTTP bool) *tapConn {
	if r == nil {
		r = conn
	}
	c := &tapConn{Conn: conn, r: r, tap: tap}
	c.inScan = frameScanner{
		skipHTTP:  skipInHTTP,
		onMessage: func(op byte, prefix []byte, total uint64) { tap.message(false, op, prefix, total) },
		onControl: func(op byte) { tap.control(false, op) },
	}
	c.outScan = frameScanner{
		skipHTTP:  skipOutHTTP,
		onMessage: func(op byte, prefix []byte, total uint64) { tap.message(true, op, prefix, total) },
		onControl: func(op byte) { tap.control(true, op) },
	}
	return c
}

func (c *tapConn) Read(p []byte) (int, error) {
	if c.onFirstRead != nil {
		c.firstRead.Do(c.onFirstRead)
	}
	n, err := c.r.Read(p)
	if n > 0 {
		c.inScan.feed(p[:n])
	}
	if err != nil {
		c.tap.noteReadErr(err)
	}
	return n, err
}

func (c *tapConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	// Scan before writing: the agent may answer (an Error for a Connect)
	// before Write returns, and its answer must find the stream recorded.
	// A failed write ends the session anyway, so over-counting its bytes
	// cannot mislead a test.
	c.outScan.feed(p)
	return c.Conn.Write(p)
}

// hijackedReadWriter gives gorilla a reader on top of the tap, so that
// gorilla reads (and the tap sees) everything, including bytes the HTTP
// server had already buffered.
func hijackedReadWriter(c *tapConn, brw *bufio.ReadWriter) *bufio.ReadWriter {
	return bufio.NewReadWriter(bufio.NewReaderSize(c, 4096), brw.Writer)
}
