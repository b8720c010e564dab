package main

// The tunnel side of the stream-test protocol (see streamtest.go), as the
// reference agent answers it. It is the Go counterpart of the peer the
// Python tests implement, and it checks the stand-in's half of the
// protocol against the real remotedialer client.

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/rancher/remotedialer"
)

// streamPeerOptions tune the peer.
type streamPeerOptions struct {
	// sinkGate, if set, is waited for before a sink starts reading: it
	// returns once the agent's session has paused the stand-in, which makes
	// Pause deterministic for a lone sink stream.
	sinkGate func(ctx context.Context)
	// sourceSizes are the sizes of the source's writes, cycled.
	sourceSizes []int
}

func serveStreamTestPeer(ctx context.Context, conn net.Conn, opts streamPeerOptions) error {
	defer conn.Close()
	hdr := make([]byte, streamHeaderLen)
	if _, err := io.ReadFull(conn, hdr); err != nil {
		return fmt.Errorf("reading header: %w", err)
	}
	op := hdr[0]
	n := int64(binary.BigEndian.Uint64(hdr[1:9]))
	seed := binary.BigEndian.Uint64(hdr[9:17])
	switch op {
	case streamOpEcho:
		buf := make([]byte, 32*1024)
		for left := n; left > 0; {
			k, err := conn.Read(buf[:min(int64(len(buf)), left)])
			if k > 0 {
				if _, werr := conn.Write(buf[:k]); werr != nil {
					return werr
				}
				left -= int64(k)
			}
			if err != nil {
				return fmt.Errorf("echo: %d bytes short: %w", left, err)
			}
		}
		return nil
	case streamOpSource:
		sizes := opts.sourceSizes
		if len(sizes) == 0 {
			sizes = []int{32 * 1024}
		}
		gen := newStreamPayload(seed)
		buf := make([]byte, maxInt(sizes))
		for sent, i := int64(0), 0; sent < n; i++ {
			size := min(int64(sizes[i%len(sizes)]), n-sent)
			gen.Read(buf[:size])
			if _, err := conn.Write(buf[:size]); err != nil {
				return err
			}
			sent += size
		}
		return nil
	case streamOpSink:
		// Only a stream larger than the agent's read buffer can pause.
		if opts.sinkGate != nil && n > remotedialer.MaxBuffer+128*1024 {
			gateCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
			opts.sinkGate(gateCtx)
			cancel()
		}
		h := sha256.New()
		if _, err := io.CopyN(h, conn, n); err != nil {
			return fmt.Errorf("sink: %w", err)
		}
		_, err := conn.Write(h.Sum(nil))
		return err
	}
	return fmt.Errorf("unknown op %q", op)
}
