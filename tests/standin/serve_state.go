package main

// Persistence of the stand-in's state (CA, clusters, extension data) in
// --state-dir, so that a restarted stand-in keeps its CA checksum, its
// clusters and their tokens. The file is replaced atomically (write to a
// temporary file, fsync, rename). Changes are coalesced: a burst of
// thousands of connects writes the file a few times, not thousands; Flush
// writes at once and runs at shutdown.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

const (
	stateFileName = "standin-state.json"
	stateVersion  = 1
	// saveCoalesce is how long the saver waits after a change before it
	// writes, to fold a burst of changes into one write.
	saveCoalesce = 200 * time.Millisecond
)

// stateHook persists extension-wide data that does not belong to one
// cluster. Load runs after the core state is loaded, before serving.
type stateHook struct {
	Name string
	Load func(s *Standin, data json.RawMessage) error
}

var stateHooks []stateHook

type persistedState struct {
	Version  int                        `json:"version"`
	CACert   string                     `json:"caCert"`
	CAKey    string                     `json:"caKey"`
	Clusters []*Cluster                 `json:"clusters"`
	Ext      map[string]json.RawMessage `json:"ext,omitempty"`
}

type statePersistence struct {
	path  string
	dirty chan struct{}
	// saveMu serialises writers so the newest snapshot is written last.
	saveMu sync.Mutex
}

// loadState reads the state directory, or creates a fresh CA when it holds
// no state yet. An empty dir means "keep nothing" (a CA per process).
func (s *Standin) loadState(dir string) error {
	if dir == "" {
		ca, err := newCA()
		if err != nil {
			return err
		}
		s.setCA(ca)
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	s.persistence = &statePersistence{
		path:  filepath.Join(dir, stateFileName),
		dirty: make(chan struct{}, 1),
	}
	raw, err := os.ReadFile(s.persistence.path)
	if errors.Is(err, fs.ErrNotExist) {
		ca, err := newCA()
		if err != nil {
			return err
		}
		s.setCA(ca)
		return s.Flush()
	}
	if err != nil {
		return err
	}
	var st persistedState
	if err := json.Unmarshal(raw, &st); err != nil {
		return fmt.Errorf("state %s: %w", s.persistence.path, err)
	}
	if st.Version != stateVersion {
		return fmt.Errorf("state %s: version %d, want %d", s.persistence.path, st.Version, stateVersion)
	}
	ca, err := loadCA(st.CACert, st.CAKey)
	if err != nil {
		return err
	}
	s.setCA(ca)
	s.mu.Lock()
	for _, c := range st.Clusters {
		s.clusters[c.ID] = c
		for _, t := range c.Tokens {
			s.byToken[t.Token] = c.ID
		}
	}
	for k, v := range st.Ext {
		s.stateExt[k] = v
	}
	s.mu.Unlock()
	for _, hook := range stateHooks {
		if err := hook.Load(s, s.StateExt(hook.Name)); err != nil {
			return fmt.Errorf("state extension %s: %w", hook.Name, err)
		}
	}
	slog.Info("state loaded", "path", s.persistence.path, "clusters", len(st.Clusters))
	return nil
}

func (s *Standin) setCA(ca *standinCA) {
	s.ca = ca
	s.cacerts = ca.certPEM
	s.checksum = caChecksum(ca.certPEM)
}

// markDirtyLocked asks the saver to write soon. Caller holds s.mu.
func (s *Standin) markDirtyLocked() {
	if s.persistence == nil {
		return
	}
	select {
	case s.persistence.dirty <- struct{}{}:
	default:
	}
}

// runSaver writes the state after changes until the stand-in stops.
func (s *Standin) runSaver() {
	if s.persistence == nil {
		return
	}
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.persistence.dirty:
		}
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(saveCoalesce):
		}
		if err := s.Flush(); err != nil {
			slog.Error("saving state failed", "error", err)
		}
	}
}

// Flush writes the state now.
func (s *Standin) Flush() error {
	p := s.persistence
	if p == nil {
		return nil
	}
	p.saveMu.Lock()
	defer p.saveMu.Unlock()
	s.mu.Lock()
	st := persistedState{
		Version: stateVersion,
		CACert:  s.ca.certPEM,
		CAKey:   s.ca.keyPEM,
		Ext:     map[string]json.RawMessage{},
	}
	for _, c := range s.clusters {
		cp := c.copyLocked()
		st.Clusters = append(st.Clusters, &cp)
	}
	for k, v := range s.stateExt {
		st.Ext[k] = v
	}
	s.mu.Unlock()
	sort.Slice(st.Clusters, func(i, j int) bool { return st.Clusters[i].ID < st.Clusters[j].ID })
	data, err := json.MarshalIndent(&st, "", " ")
	if err != nil {
		return err
	}
	return writeFileAtomic(p.path, data)
}

func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	// Make the rename itself durable.
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
