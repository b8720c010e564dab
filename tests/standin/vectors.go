package main

// `standin vectors`: remotedialer messages of every type, as the Go library
// itself writes them, for the Python codec test.
//
// Everything runs in this process over loopback: a remotedialer Server and
// a real remotedialer client ("the agent") talk through a recording
// websocket relay; the server dials through the agent and the scenario makes
// Connect, Data (both directions, empty and large), Error (EOF and a dial
// error), Pause and Resume (both directions, from a reader that waits) and
// SyncConnections (the client's 60 s timer, so this takes about a minute)
// cross. A second Server peered with the first (PeerID/PeerToken, AddPeer)
// reaches it through a second recording relay, which yields AddClient,
// RemoveClient and a peer-forwarded Connect ("<client>::tcp").
//
// The output is a JSON array, oldest first:
//
//	{"seq":N, "link":"agent"|"peer", "direction":"server-to-client"|"client-to-server",
//	 "type":"Data", "hex":"...", "note":"...",
//	 "fields":{"id":…, "connID":…, "type":1, "deadline":15000, "payloadHex":"…"}}
//
// fields hold what remotedialer's decoder takes from the bytes: Data has
// deadline and payloadHex; Connect deadline, proto and address (split at the
// first "/" of at most 266 bytes); Error text (at most 100 bytes, "EOF" is a
// clean close); AddClient and RemoveClient client (at most 100 bytes);
// SyncConnections ids (little-endian int64s); Pause and Resume nothing more.
// The scenario also checks the recording against what it drove (payloads,
// addresses, error texts) and fails if they disagree.
//
// Without --all only a selection is printed: the first three messages of
// each (link, direction, type), every empty or largest Data, every distinct
// Error text and Connect proto, and every message of the rarer types.

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rancher/remotedialer"
)

func init() {
	register("vectors", runVectors)
}

const (
	vectorsDirToClient = "server-to-client"
	vectorsDirToServer = "client-to-server"
	vectorsLinkAgent   = "agent"
	vectorsLinkPeer    = "peer"
	vectorsClientHdr   = "X-Vectors-Client"
	vectorsPeerToken   = "vectors-peer-token"
	vectorsEchoAddr    = "10.43.0.1:443"
	vectorsSinkAddr    = "10.43.0.2:80"
	vectorsSourceAddr  = "10.43.0.3:80"
	vectorsBulk        = 3 << 20
)

// vectorMsg is one recorded websocket binary message.
type vectorMsg struct {
	Seq       int            `json:"seq"`
	Link      string         `json:"link"`
	Direction string         `json:"direction"`
	Type      string         `json:"type"`
	Hex       string         `json:"hex"`
	Note      string         `json:"note,omitempty"`
	Fields    map[string]any `json:"fields"`

	raw     []byte
	typ     int64
	connID  int64
	payload []byte
}

// decodeVector reads a message the way remotedialer's newServerMessage
// does (encoding/binary varints) and returns its fields.
func decodeVector(b []byte) (*vectorMsg, error) {
	r := bytes.NewReader(b)
	id, err := binary.ReadVarint(r)
	if err != nil {
		return nil, fmt.Errorf("id: %w", err)
	}
	connID, err := binary.ReadVarint(r)
	if err != nil {
		return nil, fmt.Errorf("connID: %w", err)
	}
	typ, err := binary.ReadVarint(r)
	if err != nil {
		return nil, fmt.Errorf("type: %w", err)
	}
	m := &vectorMsg{raw: b, typ: typ, connID: connID, Fields: map[string]any{"id": id, "connID": connID, "type": typ}}
	if typ == rdData || typ == rdConnect {
		deadline, err := binary.ReadVarint(r)
		if err != nil {
			return nil, fmt.Errorf("deadline: %w", err)
		}
		m.Fields["deadline"] = deadline
	}
	m.payload = b[len(b)-r.Len():]
	if typ > 0 && int(typ) < len(messageTypeNames) {
		m.Type = messageTypeNames[typ]
	} else {
		m.Type = "Unknown"
	}
	limited := func(n int) []byte { return m.payload[:min(n, len(m.payload))] }
	switch typ {
	case rdData:
		m.Fields["payloadHex"] = hex.EncodeToString(m.payload)
	case rdConnect:
		proto, address, ok := strings.Cut(string(limited(266)), "/")
		if !ok {
			return nil, errors.New("failed to parse connect address")
		}
		m.Fields["proto"], m.Fields["address"] = proto, address
	case rdError:
		m.Fields["text"] = string(limited(100))
	case 4, 5:
		m.Fields["client"] = string(limited(100))
	case rdSyncConnections:
		if len(m.payload)%8 != 0 {
			return nil, errors.New("sync connections payload is not a multiple of 8")
		}
		ids := []int64{}
		for i := 0; i < len(m.payload); i += 8 {
			ids = append(ids, int64(binary.LittleEndian.Uint64(m.payload[i:])))
		}
		m.Fields["ids"] = ids
	}
	return m, nil
}

// vectorRecorder keeps the messages in arrival order and wakes waiters.
type vectorRecorder struct {
	mu      sync.Mutex
	msgs    []*vectorMsg
	changed chan struct{}
	err     error
}

func newVectorRecorder() *vectorRecorder {
	return &vectorRecorder{changed: make(chan struct{})}
}

func (v *vectorRecorder) add(link, dir string, data []byte) {
	m, err := decodeVector(slices.Clone(data))
	v.mu.Lock()
	defer v.mu.Unlock()
	if err != nil {
		if v.err == nil {
			v.err = fmt.Errorf("%s %s message %x: %w", link, dir, data[:min(len(data), 32)], err)
		}
	} else {
		m.Seq, m.Link, m.Direction, m.Hex = len(v.msgs), link, dir, hex.EncodeToString(m.raw)
		v.msgs = append(v.msgs, m)
	}
	close(v.changed)
	v.changed = make(chan struct{})
}

// find returns the recorded messages matching pred.
func (v *vectorRecorder) find(pred func(*vectorMsg) bool) []*vectorMsg {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []*vectorMsg
	for _, m := range v.msgs {
		if pred(m) {
			out = append(out, m)
		}
	}
	return out
}

// wait returns the first message matching pred, waiting for it.
func (v *vectorRecorder) wait(ctx context.Context, what string, pred func(*vectorMsg) bool) (*vectorMsg, error) {
	for {
		v.mu.Lock()
		for _, m := range v.msgs {
			if pred(m) {
				v.mu.Unlock()
				return m, nil
			}
		}
		ch := v.changed
		v.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		}
	}
}

func isMsg(link, dir string, typ int64, connID int64) func(*vectorMsg) bool {
	return func(m *vectorMsg) bool {
		return m.Link == link && m.Direction == dir && m.typ == typ && (connID < 0 || m.connID == connID)
	}
}

// vectorRelay is a websocket proxy that records every binary message.
type vectorRelay struct {
	rec      *vectorRecorder
	link     string
	upstream string
}

func (v *vectorRelay) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	headers := http.Header{}
	for _, k := range []string{vectorsClientHdr, remotedialer.ID, remotedialer.Token, "Authorization", tunnelParamsHeader} {
		if val := r.Header.Get(k); val != "" {
			headers.Set(k, val)
		}
	}
	up, resp, err := websocket.DefaultDialer.Dial(v.upstream+r.URL.Path, headers)
	if err != nil {
		code := http.StatusBadGateway
		if resp != nil {
			code = resp.StatusCode
		}
		http.Error(w, err.Error(), code)
		return
	}
	upgrader := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	down, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		up.Close()
		return
	}
	forward := func(to *websocket.Conn, kind int) func(string) error {
		return func(data string) error {
			return to.WriteControl(kind, []byte(data), time.Now().Add(10*time.Second))
		}
	}
	// The server's read deadline only moves on pings: pass them through.
	down.SetPingHandler(forward(up, websocket.PingMessage))
	down.SetPongHandler(forward(up, websocket.PongMessage))
	up.SetPingHandler(forward(down, websocket.PingMessage))
	up.SetPongHandler(forward(down, websocket.PongMessage))
	done := make(chan struct{}, 2)
	pump := func(from, to *websocket.Conn, dir string) {
		defer func() { done <- struct{}{} }()
		for {
			kind, data, err := from.ReadMessage()
			if err != nil {
				return
			}
			if kind == websocket.BinaryMessage {
				v.rec.add(v.link, dir, data)
			}
			if err := to.WriteMessage(kind, data); err != nil {
				return
			}
		}
	}
	go pump(down, up, vectorsDirToServer)
	go pump(up, down, vectorsDirToClient)
	<-done
	up.Close()
	down.Close()
	<-done
}

// serveLocal serves h on a loopback port and returns its ws:// URL.
func serveLocal(h http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return "ws://" + ln.Addr().String(), func() { srv.Close() }, nil
}

func vectorsAuthorizer(req *http.Request) (string, bool, error) {
	key := req.Header.Get(vectorsClientHdr)
	return key, key != "", nil
}

// vectorAgent is the local side of the agent: what its Connects reach.
type vectorAgent struct {
	rec      *vectorRecorder
	ctx      context.Context
	sinkRead chan int64
}

func bulkPattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func (a *vectorAgent) dial(ctx context.Context, network, address string) (net.Conn, error) {
	switch address {
	case vectorsEchoAddr:
		ours, theirs := net.Pipe()
		go func() {
			io.Copy(theirs, theirs)
			theirs.Close()
		}()
		return ours, nil
	case vectorsSinkAddr:
		// Read nothing until the agent has paused the server, then all.
		ours, theirs := net.Pipe()
		go func() {
			defer theirs.Close()
			if _, err := a.rec.wait(a.ctx, "the agent's Pause", isMsg(vectorsLinkAgent, vectorsDirToServer, rdPause, -1)); err != nil {
				return
			}
			n, _ := io.Copy(io.Discard, theirs)
			a.sinkRead <- n
		}()
		return ours, nil
	case vectorsSourceAddr:
		ours, theirs := net.Pipe()
		go func() {
			defer theirs.Close()
			data := bulkPattern(vectorsBulk)
			for off := 0; off < len(data); off += 64 * 1024 {
				if _, err := theirs.Write(data[off:min(off+64*1024, len(data))]); err != nil {
					return
				}
			}
		}()
		return ours, nil
	}
	var d net.Dialer
	return d.DialContext(ctx, network, address)
}

// startVectorAgent connects a real remotedialer client and returns once
// the server has its session.
func startVectorAgent(ctx context.Context, url, key string, local remotedialer.Dialer, server *remotedialer.Server) (context.CancelFunc, error) {
	agentCtx, stop := context.WithCancel(ctx)
	go remotedialer.ConnectToProxyWithDialer(agentCtx, url+"/v3/connect", http.Header{vectorsClientHdr: {key}},
		func(string, string) bool { return true }, nil, local, nil)
	for !server.HasSession(key) {
		select {
		case <-ctx.Done():
			stop()
			return nil, fmt.Errorf("agent %s never connected", key)
		case <-time.After(5 * time.Millisecond):
		}
	}
	return stop, nil
}

type vectorCheck struct{ failures []string }

func (c *vectorCheck) expect(ok bool, format string, args ...any) {
	if !ok {
		c.failures = append(c.failures, fmt.Sprintf(format, args...))
	}
}

func concatPayloads(msgs []*vectorMsg) []byte {
	var out []byte
	for _, m := range msgs {
		out = append(out, m.payload...)
	}
	return out
}

func mustConnID(c net.Conn) int64 {
	id, ok := remotedialerConnID(c)
	if !ok {
		panic("not a remotedialer connection")
	}
	return id
}

func runVectors(args []string) error {
	fs := flag.NewFlagSet("vectors", flag.ContinueOnError)
	syncWait := fs.Duration("sync-wait", 90*time.Second, "how long to wait for the client's SyncConnections (sent 60 s after connecting); 0 skips it")
	all := fs.Bool("all", false, "print every recorded message, not a selection")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := setupLogging(*logLevel); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *syncWait+2*time.Minute)
	defer cancel()
	rec := newVectorRecorder()
	check := &vectorCheck{}

	// Server A, and the agent connected to it through the recording relay.
	serverA := remotedialer.New(vectorsAuthorizer, remotedialer.DefaultErrorWriter)
	serverA.PeerID, serverA.PeerToken = "vectors-a", vectorsPeerToken
	urlA, closeA, err := serveLocal(serverA)
	if err != nil {
		return err
	}
	defer closeA()
	relayAgent, closeRelay, err := serveLocal(&vectorRelay{rec: rec, link: vectorsLinkAgent, upstream: urlA})
	if err != nil {
		return err
	}
	defer closeRelay()
	agent := &vectorAgent{rec: rec, ctx: ctx, sinkRead: make(chan int64, 1)}
	stopAgent, err := startVectorAgent(ctx, relayAgent, "vectors-agent", agent.dial, serverA)
	if err != nil {
		return err
	}
	defer stopAgent()
	dial := serverA.Dialer("vectors-agent")
	slog.Info("agent connected; driving the scenario")

	// 1. Echo: small, empty and large Data both ways, then EOF both ways.
	echo, err := dial(ctx, "tcp", vectorsEchoAddr)
	if err != nil {
		return err
	}
	echoID := mustConnID(echo)
	small := []byte("GET /ping HTTP/1.1\r\nHost: not-used\r\n\r\n")
	large := bulkPattern(100 * 1024)
	for _, chunk := range [][]byte{small, {}, large} {
		if _, err := echo.Write(chunk); err != nil {
			return err
		}
		back := make([]byte, len(chunk))
		if _, err := io.ReadFull(echo, back); err != nil {
			return fmt.Errorf("echo: %w", err)
		}
		check.expect(bytes.Equal(back, chunk), "echo returned other bytes")
	}
	echo.Close()
	if _, err := rec.wait(ctx, "the agent's EOF", isMsg(vectorsLinkAgent, vectorsDirToServer, rdError, echoID)); err != nil {
		return err
	}

	// 2. A dial the agent cannot make: Error with the dial error's text.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	refused := ln.Addr().String()
	ln.Close()
	failed, err := dial(ctx, "tcp", refused)
	if err != nil {
		return err
	}
	failedID := mustConnID(failed)
	_, dialErr := failed.Read(make([]byte, 1))
	failed.Close()
	if dialErr == nil || dialErr == io.EOF {
		return fmt.Errorf("dial to %s through the agent did not fail: %v", refused, dialErr)
	}

	// 3. The agent pauses the server: its side reads nothing until then.
	sink, err := dial(ctx, "tcp", vectorsSinkAddr)
	if err != nil {
		return err
	}
	sinkID := mustConnID(sink)
	bulk := bulkPattern(vectorsBulk)
	for off := 0; off < len(bulk); off += 64 * 1024 {
		if _, err := sink.Write(bulk[off:min(off+64*1024, len(bulk))]); err != nil {
			return fmt.Errorf("writing to the paused sink: %w", err)
		}
	}
	sink.Close()
	select {
	case n := <-agent.sinkRead:
		check.expect(n == vectorsBulk, "the agent's sink read %d bytes, want %d", n, vectorsBulk)
	case <-ctx.Done():
		return errors.New("the agent's sink never finished")
	}

	// 4. The server pauses the agent: we read nothing until then.
	source, err := dial(ctx, "tcp", vectorsSourceAddr)
	if err != nil {
		return err
	}
	sourceID := mustConnID(source)
	if _, err := rec.wait(ctx, "the server's Pause", isMsg(vectorsLinkAgent, vectorsDirToClient, rdPause, sourceID)); err != nil {
		return err
	}
	got, err := io.ReadAll(source)
	if err != nil {
		return fmt.Errorf("reading the paused source: %w", err)
	}
	check.expect(bytes.Equal(got, bulkPattern(vectorsBulk)), "the source sent %d other bytes", len(got))
	source.Close()

	// 5. Two idle streams, so that SyncConnections lists something.
	var idleIDs []int64
	for range 2 {
		idle, err := dial(ctx, "tcp", vectorsEchoAddr)
		if err != nil {
			return err
		}
		defer idle.Close()
		idleIDs = append(idleIDs, mustConnID(idle))
	}

	// 6. Peering: server B dials A through a second recording relay.
	serverB := remotedialer.New(vectorsAuthorizer, remotedialer.DefaultErrorWriter)
	serverB.PeerID, serverB.PeerToken = "vectors-b", vectorsPeerToken
	urlB, closeB, err := serveLocal(serverB)
	if err != nil {
		return err
	}
	defer closeB()
	relayPeer, closeRelayPeer, err := serveLocal(&vectorRelay{rec: rec, link: vectorsLinkPeer, upstream: urlA})
	if err != nil {
		return err
	}
	defer closeRelayPeer()
	// A must know B before B dials it; A's own dial to B may fail once.
	serverA.AddPeer(urlB+"/v3/connect", "vectors-b", vectorsPeerToken)
	serverB.AddPeer(relayPeer+"/v3/connect", "vectors-a", vectorsPeerToken)
	defer serverA.RemovePeer("vectors-b")
	defer serverB.RemovePeer("vectors-a")
	stopAgent2, err := startVectorAgent(ctx, urlB, "vectors-agent-2", agent.dial, serverB)
	if err != nil {
		return err
	}
	added, err := rec.wait(ctx, "AddClient for agent 2", func(m *vectorMsg) bool {
		return m.Link == vectorsLinkPeer && m.Type == "AddClient" && strings.HasPrefix(m.Fields["client"].(string), "vectors-agent-2/")
	})
	if err != nil {
		stopAgent2()
		return err
	}
	for !serverA.HasSession("vectors-agent-2") {
		select {
		case <-ctx.Done():
			stopAgent2()
			return errors.New("server A never learned of agent 2")
		case <-time.After(5 * time.Millisecond):
		}
	}
	viaPeer, err := serverA.Dialer("vectors-agent-2")(ctx, "tcp", vectorsEchoAddr)
	if err != nil {
		stopAgent2()
		return err
	}
	viaPeerID := mustConnID(viaPeer)
	hello := []byte("hello through a peer")
	viaPeer.Write(hello)
	back := make([]byte, len(hello))
	_, err = io.ReadFull(viaPeer, back)
	check.expect(err == nil && bytes.Equal(back, hello), "echo through the peer failed: %v", err)
	viaPeer.Close()
	stopAgent2()
	removed, err := rec.wait(ctx, "RemoveClient for agent 2", func(m *vectorMsg) bool {
		return m.Link == vectorsLinkPeer && m.Type == "RemoveClient" && m.Fields["client"] == added.Fields["client"]
	})
	if err != nil {
		return err
	}
	_ = removed

	// 7. The agent's SyncConnections, 60 s after it connected.
	var syncMsg *vectorMsg
	if *syncWait > 0 {
		slog.Info("waiting for the client's SyncConnections (sent every 60 s)")
		syncCtx, cancelSync := context.WithTimeout(ctx, *syncWait)
		syncMsg, err = rec.wait(syncCtx, "SyncConnections", isMsg(vectorsLinkAgent, vectorsDirToServer, rdSyncConnections, -1))
		cancelSync()
		if err != nil {
			return err
		}
	}

	// What the recording must show, given what was driven.
	rec.mu.Lock()
	recErr := rec.err
	rec.mu.Unlock()
	if recErr != nil {
		return recErr
	}
	connects := rec.find(isMsg(vectorsLinkAgent, vectorsDirToClient, rdConnect, echoID))
	check.expect(len(connects) == 1 && connects[0].Fields["proto"] == "tcp" && connects[0].Fields["address"] == vectorsEchoAddr,
		"Connect for the echo stream: %v", connects)
	toAgent := rec.find(isMsg(vectorsLinkAgent, vectorsDirToClient, rdData, echoID))
	check.expect(len(toAgent) == 3 && bytes.Equal(toAgent[0].payload, small) && len(toAgent[1].payload) == 0 && bytes.Equal(toAgent[2].payload, large),
		"Data to the agent on the echo stream: %d messages", len(toAgent))
	fromAgent := concatPayloads(rec.find(isMsg(vectorsLinkAgent, vectorsDirToServer, rdData, echoID)))
	check.expect(bytes.Equal(fromAgent, append(slices.Clone(small), large...)), "Data from the agent on the echo stream: %d bytes", len(fromAgent))
	eofs := rec.find(isMsg(vectorsLinkAgent, vectorsDirToClient, rdError, echoID))
	check.expect(len(eofs) >= 1 && eofs[0].Fields["text"] == "EOF", "the server's Error on the echo stream: %v", eofs)
	dialErrs := rec.find(isMsg(vectorsLinkAgent, vectorsDirToServer, rdError, failedID))
	check.expect(len(dialErrs) >= 1 && dialErrs[0].Fields["text"] == dialErr.Error(),
		"the agent's dial Error: recorded %v, server read %q", dialErrs, dialErr)
	for _, want := range []struct {
		dir    string
		typ    int64
		connID int64
	}{
		{vectorsDirToServer, rdPause, sinkID}, {vectorsDirToServer, rdResume, sinkID},
		{vectorsDirToClient, rdPause, sourceID}, {vectorsDirToClient, rdResume, sourceID},
	} {
		check.expect(len(rec.find(isMsg(vectorsLinkAgent, want.dir, want.typ, want.connID))) > 0,
			"no %s %s for stream %d", messageTypeNames[want.typ], want.dir, want.connID)
	}
	if syncMsg != nil {
		ids, _ := syncMsg.Fields["ids"].([]int64)
		for _, id := range idleIDs {
			check.expect(slices.Contains(ids, id), "SyncConnections %v lacks idle stream %d", ids, id)
		}
		check.expect(slices.IsSorted(ids), "SyncConnections ids not sorted: %v", ids)
	}
	peerConnects := rec.find(isMsg(vectorsLinkPeer, vectorsDirToClient, rdConnect, viaPeerID))
	check.expect(len(peerConnects) == 1 && peerConnects[0].Fields["proto"] == "vectors-agent-2::tcp",
		"peer-forwarded Connect: %v", peerConnects)
	if len(check.failures) > 0 {
		return fmt.Errorf("the recording disagrees with the scenario:\n  %s", strings.Join(check.failures, "\n  "))
	}

	out := rec.find(func(*vectorMsg) bool { return true })
	if !*all {
		out = selectVectors(out)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	return enc.Encode(out)
}

// selectVectors keeps a representative subset and notes why.
func selectVectors(msgs []*vectorMsg) []*vectorMsg {
	keep := map[*vectorMsg]string{}
	perGroup := map[string]int{}
	seenText := map[string]bool{}
	largest := map[string]*vectorMsg{}
	for _, m := range msgs {
		group := m.Link + " " + m.Direction + " " + m.Type
		if perGroup[group] < 3 {
			perGroup[group]++
			keep[m] = ""
		}
		switch m.typ {
		case rdData:
			if len(m.payload) == 0 {
				keep[m] = "empty"
			}
			key := m.Link + " " + m.Direction
			if largest[key] == nil || len(m.payload) > len(largest[key].payload) {
				largest[key] = m
			}
		case rdError:
			if text := m.Fields["text"].(string); !seenText[text] {
				seenText[text] = true
				keep[m] = ""
			}
		case rdConnect:
			if proto := m.Fields["proto"].(string); !seenText["proto "+proto] {
				seenText["proto "+proto] = true
				keep[m] = ""
			}
			if strings.Contains(m.Fields["proto"].(string), "::") {
				keep[m] = "peer-forwarded"
			}
		default:
			keep[m] = keep[m]
		}
	}
	for _, m := range largest {
		keep[m] = "largest"
	}
	var out []*vectorMsg
	for _, m := range msgs {
		if note, ok := keep[m]; ok {
			m.Note = note
			out = append(out, m)
		}
	}
	return out
}
