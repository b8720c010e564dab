package main

// Stream tests: the stand-in opens streams through a cluster's tunnel, as
// Rancher does, and checks that bytes, end-of-stream and flow control
// (Pause/Resume) survive the tunnel client under test.
//
// Protocol. The stand-in dials the requested address through the tunnel
// (a Connect) and writes a 17-byte header:
//
//	op (1 byte: 'E', 'S' or 'K') || N (uint64, big-endian) || seed (uint64, big-endian)
//
// payload(seed, N) is the first N bytes of
//
//	sha256(seed_be8 || 0_be8) || sha256(seed_be8 || 1_be8) || sha256(seed_be8 || 2_be8) || ...
//
// (each block is the SHA-256 of 16 bytes: the seed and a block counter, both
// big-endian uint64).
//
//   - 'E' echo: after the header the stand-in writes payload(seed, N) in
//     writes of varied sizes (1 byte to 500 000 bytes; one write is empty,
//     i.e. a Data message with no payload), while reading concurrently. The
//     peer copies every payload byte back as it arrives (the header is not
//     echoed) and, once it has echoed N bytes, closes the stream (Error
//     "EOF"). The stand-in expects exactly payload(seed, N), then EOF: data
//     sent before the close must never be lost.
//   - 'S' source: the stand-in writes only the header. The peer writes
//     payload(seed, N) and closes. When N exceeds remotedialer's 2 MiB read
//     buffer the stand-in reads nothing until its session has sent Pause for
//     the stream (or the stream has ended), then reads in 4 KiB pieces, so a
//     peer that honours Pause sees Pause and later Resume.
//   - 'K' sink: the stand-in writes the header and then payload(seed, N) as
//     fast as it can, in 64 KiB writes (remotedialer blocks them while the
//     peer has the stream paused). The peer reads the N payload bytes as a
//     slow consumer (so that its session sends Pause, then Resume), then
//     writes the 32-byte SHA-256 of the payload and closes. The stand-in
//     expects exactly that digest, then EOF.
//
// remotedialer has no half-close: an Error ends both directions, so the
// side that closes is always the one that has nothing more to read.
//
// Each result reports what crossed the wire for the stream (from the tap):
// pausesSent/resumesSent are the stand-in's Pause/Resume (it is slow),
// pausesReceived/resumesReceived the peer's, errorsReceived the texts of
// the peer's Error messages ("EOF" for a clean close).

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rancher/remotedialer"
)

const (
	streamOpEcho      = 'E'
	streamOpSource    = 'S'
	streamOpSink      = 'K'
	streamHeaderLen   = 17
	streamDigestLen   = sha256.Size
	maxStreamBytes    = 1 << 40
	defaultStreamTime = 120 * time.Second
)

var (
	streamOps = map[string]byte{"echo": streamOpEcho, "source": streamOpSource, "sink": streamOpSink}
	// echoWriteSizes are the sizes of the stand-in's echo writes, cycled:
	// tiny, around gorilla's 4 KiB frame buffer, around io.Copy's 32 KiB,
	// and larger than anything Rancher sends in one message.
	echoWriteSizes = []int{1, 3, 100, 1000, 4095, 4096, 4097, 16384, 32767, 32768, 65536, 7, 131072, 262144, 500000}
	sinkWriteSize  = 64 * 1024
)

// streamPayload generates payload(seed, ·) as an endless reader.
type streamPayload struct {
	in    [16]byte
	block [sha256.Size]byte
	used  int
	count uint64
}

func newStreamPayload(seed uint64) *streamPayload {
	p := &streamPayload{used: sha256.Size}
	binary.BigEndian.PutUint64(p.in[:8], seed)
	return p
}

func (p *streamPayload) Read(b []byte) (int, error) {
	n := 0
	for n < len(b) {
		if p.used == sha256.Size {
			binary.BigEndian.PutUint64(p.in[8:], p.count)
			p.block = sha256.Sum256(p.in[:])
			p.count++
			p.used = 0
		}
		k := copy(b[n:], p.block[p.used:])
		p.used += k
		n += k
	}
	return n, nil
}

func streamHeader(op byte, n, seed uint64) []byte {
	h := make([]byte, streamHeaderLen)
	h[0] = op
	binary.BigEndian.PutUint64(h[1:9], n)
	binary.BigEndian.PutUint64(h[9:17], seed)
	return h
}

// StreamTest is one stream to run.
type StreamTest struct {
	Op             string  `json:"op"`
	Bytes          int64   `json:"bytes"`
	Seed           *uint64 `json:"seed"`
	TimeoutSeconds float64 `json:"timeoutSeconds"`
}

// StreamRequest is the body of POST /standin/clusters/<id>/streams.
type StreamRequest struct {
	Address        string       `json:"address"`
	Tunnel         string       `json:"tunnel"`
	Tests          []StreamTest `json:"tests"`
	Concurrency    int          `json:"concurrency"`
	TimeoutSeconds float64      `json:"timeoutSeconds"`
}

// StreamResult is the outcome of one stream test.
type StreamResult struct {
	Index           int      `json:"index"`
	Op              string   `json:"op"`
	Bytes           int64    `json:"bytes"`
	Seed            uint64   `json:"seed"`
	OK              bool     `json:"ok"`
	Error           string   `json:"error"`
	ConnID          int64    `json:"connId"`
	ElapsedMs       float64  `json:"elapsedMs"`
	BytesWritten    int64    `json:"bytesWritten"`
	BytesRead       int64    `json:"bytesRead"`
	Tracked         bool     `json:"tracked"`
	PausesSent      int      `json:"pausesSent"`
	ResumesSent     int      `json:"resumesSent"`
	PausesReceived  int      `json:"pausesReceived"`
	ResumesReceived int      `json:"resumesReceived"`
	DataMsgsSent    int64    `json:"dataMessagesSent"`
	DataMsgsRecv    int64    `json:"dataMessagesReceived"`
	ErrorsReceived  []string `json:"errorsReceived"`
	ErrorsSent      []string `json:"errorsSent"`
}

// StreamResponse is the answer to a StreamRequest.
type StreamResponse struct {
	OK         bool           `json:"ok"`
	Failed     int            `json:"failed"`
	TotalBytes int64          `json:"totalBytes"`
	ElapsedMs  float64        `json:"elapsedMs"`
	Results    []StreamResult `json:"results"`
}

type badRequestError struct{ error }

func tunnelKindOf(name string) (TunnelKind, error) {
	switch name {
	case "", string(TunnelMain):
		return TunnelMain, nil
	case string(TunnelSteve):
		return TunnelSteve, nil
	}
	return "", badRequestError{fmt.Errorf("unknown tunnel %q", name)}
}

func (k TunnelKind) key(clusterID string) string {
	if k == TunnelSteve {
		return steveKeyPrefix + clusterID
	}
	return clusterID
}

// RunStreams runs the tests of req through a cluster's tunnel, at most
// req.Concurrency at a time.
func (s *Standin) RunStreams(ctx context.Context, clusterID string, req StreamRequest) (StreamResponse, error) {
	kind, err := tunnelKindOf(req.Tunnel)
	if err != nil {
		return StreamResponse{}, err
	}
	if _, ok := s.Cluster(clusterID); !ok {
		return StreamResponse{}, errUnknownCluster
	}
	if req.Address == "" {
		return StreamResponse{}, badRequestError{errors.New("address is required")}
	}
	for i, t := range req.Tests {
		if _, ok := streamOps[t.Op]; !ok {
			return StreamResponse{}, badRequestError{fmt.Errorf("test %d: unknown op %q", i, t.Op)}
		}
		if t.Bytes < 0 || t.Bytes > maxStreamBytes {
			return StreamResponse{}, badRequestError{fmt.Errorf("test %d: bytes out of range", i)}
		}
	}
	workers := min(max(req.Concurrency, 1), max(len(req.Tests), 1))
	resp := StreamResponse{Results: make([]StreamResult, len(req.Tests)), OK: true}
	start := time.Now()
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				resp.Results[i] = s.runStream(ctx, clusterID, kind, req, i)
			}
		}()
	}
	for i := range req.Tests {
		next <- i
	}
	close(next)
	wg.Wait()
	resp.ElapsedMs = msSince(start)
	for _, r := range resp.Results {
		resp.TotalBytes += r.Bytes
		if !r.OK {
			resp.OK = false
			resp.Failed++
		}
	}
	return resp, nil
}

func msSince(t time.Time) float64 { return float64(time.Since(t).Microseconds()) / 1000 }

// remotedialerConnID reads the connection id of a net.Conn that a
// remotedialer session returned (an unexported field of v0.6.1's
// *connection); ok is false for anything else.
func remotedialerConnID(c net.Conn) (int64, bool) {
	v := reflect.ValueOf(c)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return 0, false
	}
	f := v.Elem().FieldByName("connID")
	if !f.IsValid() || f.Kind() != reflect.Int64 {
		return 0, false
	}
	return f.Int(), true
}

// streamRun is one stream test in progress.
type streamRun struct {
	conn    net.Conn
	n       int64
	seed    uint64
	tap     *wireTap
	wire    *connWire
	written atomic.Int64
	read    atomic.Int64
}

func (s *Standin) runStream(parent context.Context, clusterID string, kind TunnelKind, req StreamRequest, i int) StreamResult {
	t := req.Tests[i]
	seed := uint64(i + 1)
	if t.Seed != nil {
		seed = *t.Seed
	}
	res := StreamResult{Index: i, Op: t.Op, Bytes: t.Bytes, Seed: seed}
	timeout := defaultStreamTime
	if t.TimeoutSeconds > 0 {
		timeout = time.Duration(t.TimeoutSeconds * float64(time.Second))
	} else if req.TimeoutSeconds > 0 {
		timeout = time.Duration(req.TimeoutSeconds * float64(time.Second))
	}
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	start := time.Now()
	conn, err := s.rd.Dialer(kind.key(clusterID))(ctx, "tcp", req.Address)
	if err != nil {
		res.Error = "dial: " + err.Error()
		res.ElapsedMs = msSince(start)
		return res
	}
	run := &streamRun{conn: conn, n: t.Bytes, seed: seed}
	if id, ok := remotedialerConnID(conn); ok {
		res.ConnID = id
		for _, sess := range s.liveSessions(clusterID, kind) {
			if w := sess.wire.claim(id, req.Address); w != nil {
				run.tap, run.wire = sess.wire, w
				break
			}
		}
	}
	// A timeout closes the stream, which unblocks every read and write
	// (including a write held by the peer's Pause).
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	switch streamOps[t.Op] {
	case streamOpEcho:
		err = run.echo()
	case streamOpSource:
		err = run.source(ctx)
	case streamOpSink:
		err = run.sink()
	}
	stop()
	conn.Close()
	if ctx.Err() != nil && err != nil {
		err = fmt.Errorf("timed out after %s: %w", timeout, err)
	}
	res.ElapsedMs = msSince(start)
	res.BytesWritten = run.written.Load()
	res.BytesRead = run.read.Load()
	if err != nil {
		res.Error = err.Error()
	} else {
		res.OK = true
	}
	if run.wire != nil {
		w := run.tap.snapshot(run.wire)
		run.tap.release(run.wire)
		res.Tracked = true
		res.PausesSent, res.ResumesSent = w.PauseOut, w.ResumeOut
		res.PausesReceived, res.ResumesReceived = w.PauseIn, w.ResumeIn
		res.DataMsgsSent, res.DataMsgsRecv = w.MsgsOut, w.MsgsIn
		res.ErrorsReceived, res.ErrorsSent = w.ErrorsIn, w.ErrorsOut
	}
	return res
}

// both runs a writer and a reader on the stream; when one fails or the
// reader ends first, the stream is closed so the other cannot hang.
func (r *streamRun) both(write, read func() error) error {
	wch, rch := make(chan error, 1), make(chan error, 1)
	go func() { wch <- write() }()
	go func() { rch <- read() }()
	var werr, rerr error
	wdone, rdone := false, false
	for !wdone || !rdone {
		select {
		case werr = <-wch:
			wdone = true
			if werr != nil && !rdone {
				r.conn.Close()
			}
		case rerr = <-rch:
			rdone = true
			if !wdone {
				r.conn.Close()
			}
		}
	}
	if rerr != nil {
		return rerr
	}
	return werr
}

func (r *streamRun) writeHeader(op byte) error {
	if _, err := r.conn.Write(streamHeader(op, uint64(r.n), r.seed)); err != nil {
		return fmt.Errorf("writing header: %w", err)
	}
	return nil
}

// writePayload writes payload(seed, n) in the given sizes (cycled).
func (r *streamRun) writePayload(sizes []int, emptyWrite bool, h hash.Hash) error {
	gen := newStreamPayload(r.seed)
	buf := make([]byte, maxInt(sizes))
	var sent int64
	for i := 0; sent < r.n; i++ {
		size := min(int64(sizes[i%len(sizes)]), r.n-sent)
		chunk := buf[:size]
		gen.Read(chunk)
		if h != nil {
			h.Write(chunk)
		}
		if _, err := r.conn.Write(chunk); err != nil {
			return fmt.Errorf("write after %d of %d bytes: %w", sent, r.n, err)
		}
		sent += size
		r.written.Store(sent)
		if emptyWrite && i == 2 {
			if _, err := r.conn.Write([]byte{}); err != nil {
				return fmt.Errorf("empty write: %w", err)
			}
		}
	}
	return nil
}

func maxInt(xs []int) int {
	m := 0
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

// readExpect reads exactly want (n bytes) in pieces of at most chunk
// bytes, then requires EOF.
func (r *streamRun) readExpect(want io.Reader, n int64, chunk int) error {
	buf := make([]byte, chunk)
	expect := make([]byte, chunk)
	var got int64
	for got < n {
		k, err := r.conn.Read(buf[:min(int64(chunk), n-got)])
		if k > 0 {
			io.ReadFull(want, expect[:k])
			if i := firstDifference(buf[:k], expect[:k]); i >= 0 {
				return fmt.Errorf("payload differs at byte %d of %d", got+int64(i), n)
			}
			got += int64(k)
			r.read.Store(got)
		}
		if err == io.EOF && got < n {
			return fmt.Errorf("stream ended (EOF) after %d of %d bytes", got, n)
		}
		if err != nil && got < n {
			return fmt.Errorf("read failed after %d of %d bytes: %w", got, n, err)
		}
	}
	k, err := r.conn.Read(buf[:1])
	switch {
	case k > 0:
		return fmt.Errorf("peer sent more than the %d bytes expected", n)
	case err == io.EOF:
		return nil
	case err == nil:
		return errors.New("empty read where EOF was expected")
	default:
		return fmt.Errorf("expected EOF after %d bytes, got error: %w", n, err)
	}
}

func firstDifference(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

func (r *streamRun) echo() error {
	if err := r.writeHeader(streamOpEcho); err != nil {
		return err
	}
	return r.both(
		func() error { return r.writePayload(echoWriteSizes, true, nil) },
		func() error { return r.readExpect(newStreamPayload(r.seed), r.n, 64*1024) },
	)
}

func (r *streamRun) source(ctx context.Context) error {
	if err := r.writeHeader(streamOpSource); err != nil {
		return err
	}
	if r.n > remotedialer.MaxBuffer && r.wire != nil {
		// Let the buffer fill until our session pauses the peer.
		for {
			w := r.tap.snapshot(r.wire)
			if w.PauseOut > 0 || len(w.ErrorsIn) > 0 {
				break
			}
			select {
			case <-r.wire.notifyCh:
			case <-ctx.Done():
				return fmt.Errorf("no Pause sent and no end of stream after %d buffered bytes", w.DataIn)
			}
		}
	}
	return r.readExpect(newStreamPayload(r.seed), r.n, 4096)
}

func (r *streamRun) sink() error {
	if err := r.writeHeader(streamOpSink); err != nil {
		return err
	}
	h := sha256.New()
	var answer []byte
	err := r.both(
		func() error { return r.writePayload([]int{sinkWriteSize}, false, h) },
		func() error {
			var err error
			answer, err = readToEOF(r.conn, 4*streamDigestLen)
			r.read.Store(int64(len(answer)))
			return err
		},
	)
	if err != nil {
		return err
	}
	if digest := h.Sum(nil); !bytes.Equal(answer, digest) {
		return fmt.Errorf("peer answered %x (%d bytes), want the payload digest %x", answer, len(answer), digest)
	}
	return nil
}

// readToEOF reads until EOF, failing past limit bytes.
func readToEOF(c net.Conn, limit int) ([]byte, error) {
	var out []byte
	buf := make([]byte, 512)
	for {
		k, err := c.Read(buf)
		out = append(out, buf[:k]...)
		if len(out) > limit {
			return out, fmt.Errorf("peer sent more than %d bytes", limit)
		}
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("read failed after %d bytes: %w", len(out), err)
		}
	}
}
