package queue

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Storage health of the embedded server.
//
// When the disk fills, the embedded JetStream refuses writes, and its file
// store keeps refusing them after space returns (its write error sticks to
// the message block). herald therefore watches its own writes: a failed
// publish makes the watcher probe the store with a small write every
// storageCheck; while probes fail the queue is not ready (/readyz, gRPC
// health), and once the disk has room again (minFreeBytes) the watcher
// restarts the embedded JetStream, which reloads every stream, consumer
// and bucket from disk and clears the error. Nothing acknowledged is lost:
// a notification is acknowledged only after JetStream wrote it.

const storageCheck = time.Second

// minFree is the room dir's disk needs before JetStream is restarted: a
// few of the largest notifications, or an eighth of a small disk.
func minFree(dir string) int64 {
	n := int64(4 * EmbeddedMaxPayload)
	if total, err := diskBytes(dir); err == nil {
		n = min(n, total/8)
	}
	return n
}

// ErrStorageFull: the store refuses writes (its disk is full); it
// recovers by itself once there is room again.
var errStorageFull = errors.New("storage refuses writes (disk full?); herald recovers by itself once there is room")

// storage tracks whether the embedded store takes writes.
type storage struct {
	suspect atomic.Bool // a publish failed; probe
	broken  atomic.Bool // probes fail; not ready
	stop    func()
}

// suspectStorage notes a failed publish for the watcher.
func (q *Queue) suspectStorage() {
	if q.srv != nil {
		q.storage.suspect.Store(true)
	}
}

// watchStorage runs the storage watcher of the embedded server until stop.
func (q *Queue) watchStorage() {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for sleepCtx(ctx, storageCheck) {
			if !q.storage.suspect.Load() && !q.storage.broken.Load() {
				continue
			}
			q.checkStorage(ctx)
		}
	})
	q.storage.stop = func() { cancel(); wg.Wait() }
}

func (q *Queue) checkStorage(ctx context.Context) {
	err := q.probe(ctx)
	if err == nil {
		q.storage.suspect.Store(false)
		if q.storage.broken.Swap(false) {
			q.log.Warn("storage takes writes again; ready")
		}
		return
	}
	free, ferr := freeBytes(q.storeDir)
	if !q.storage.broken.Swap(true) {
		q.log.Error("storage refuses writes; not ready until it takes them again", "err", err, "free_bytes", free, "store_dir", q.storeDir)
	}
	if ferr != nil || free < minFree(q.storeDir) {
		return
	}
	// Room again, but the store still refuses: its write error sticks.
	q.log.Warn("the disk has room again; restarting the embedded JetStream to clear its write error", "free_bytes", free)
	if err := q.restartJetStream(); err != nil {
		q.log.Error("cannot restart the embedded JetStream", "err", err)
		return
	}
	if err := q.probe(ctx); err == nil {
		q.storage.suspect.Store(false)
		q.storage.broken.Store(false)
		q.log.Warn("storage takes writes again; ready")
	}
}

// probe stores a wake-up for no group, which whoever serves partition 0
// acknowledges: one small write through the notification stream.
func (q *Queue) probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	m := &nats.Msg{Subject: wakeSubject(0), Header: nats.Header{}}
	m.Header.Set(hdrGroup, "probe")
	m.Header.Set(jetstream.MsgIDHeader, "probe:"+strconv.FormatInt(time.Now().UnixNano(), 36))
	_, err := q.js.PublishMsg(ctx, m)
	return err
}

// restartJetStream stops and starts the embedded JetStream on the same
// store directory.
func (q *Queue) restartJetStream() error {
	if err := q.srv.DisableJetStream(); err != nil {
		return err
	}
	return q.srv.EnableJetStream(q.jsConfig())
}

// jsConfig is the embedded JetStream's configuration.
func (q *Queue) jsConfig() *server.JetStreamConfig {
	c := &server.JetStreamConfig{StoreDir: q.storeDir, MaxStore: q.maxStore, MaxMemory: -1}
	if q.cfg.Sync == SyncAlways {
		c.SyncAlways = true
	} else {
		c.SyncInterval = q.cfg.SyncInterval
	}
	return c
}

// freeBytes is the room left for an unprivileged writer on dir's disk.
func freeBytes(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// diskBytes is the size of dir's disk.
func diskBytes(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Blocks) * int64(st.Bsize), nil
}

// Size is a number of bytes in the config: an integer, or one with a unit
// (KiB, MiB, GiB, TiB; KB, MB, GB, TB).
type Size int64

// UnmarshalYAML reads "20GiB", "500MB" or 1048576.
func (s *Size) UnmarshalYAML(unmarshal func(any) error) error {
	var str string
	if err := unmarshal(&str); err != nil {
		return err
	}
	v, err := ParseSize(str)
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// MarshalYAML prints the size with the largest binary unit that divides it.
func (s Size) MarshalYAML() (any, error) { return s.String(), nil }

func (s Size) String() string {
	for _, u := range []struct {
		name string
		n    int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if s != 0 && int64(s)%u.n == 0 {
			return strconv.FormatInt(int64(s)/u.n, 10) + u.name
		}
	}
	return strconv.FormatInt(int64(s), 10)
}

// ParseSize parses a Size.
func ParseSize(str string) (Size, error) {
	str = strings.TrimSpace(str)
	units := []struct {
		suffix string
		n      int64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
	}
	mult := int64(1)
	for _, u := range units {
		if rest, ok := strings.CutSuffix(str, u.suffix); ok {
			str, mult = strings.TrimSpace(rest), u.n
			break
		}
	}
	n, err := strconv.ParseInt(str, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size (like 20GiB, 500MB or a number of bytes)", str)
	}
	return Size(n * mult), nil
}

// storeDirOf is where the embedded server keeps its files.
func storeDirOf(dataDir string) string { return filepath.Join(dataDir, jetstreamSubdir) }
