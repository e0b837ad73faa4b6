// Package queue keeps notifications durably in NATS JetStream and hands them
// to the dispatcher in order per group. It runs an embedded NATS server by
// default or uses an external cluster, and owns herald's streams, key-value
// buckets and consumers. *Queue implements store.Store, and the
// dispatcher's state (delivery records, each group's chat message).
package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/propagation"

	"github.com/herald-notify/herald/internal/secret"
	"github.com/herald-notify/herald/internal/store"
)

// Names of herald's JetStream objects.
const (
	StreamName     = "HERALD_NOTIFICATIONS"
	DeadLetterName = "HERALD_DEADLETTERS"
	RecordsBucket  = "herald_records"
	ThreadsBucket  = "herald_threads"
	GroupsBucket   = "herald_groups"
	subjectPrefix  = "herald.n."
	wakePrefix     = "herald.w."
	schedulePrefix = "herald.s."
	dlqPrefix      = "herald.dlq."
	// consumerPrefix names the partitions' consumers.
	consumerPrefix = "herald-part-"
	// priorityGroup is the consumers' one priority group: JetStream pins
	// each partition to one herald at a time.
	priorityGroup   = "herald"
	jetstreamSubdir = "jetstream"

	// EmbeddedMaxPayload is the embedded server's max_payload.
	EmbeddedMaxPayload = 8 << 20
)

// Options are the parts of a Queue that do not come from the config file.
type Options struct {
	// DataDir is herald's data_dir; the embedded server stores in
	// DataDir/jetstream. Required without Config.URL.
	DataDir string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Registerer receives the queue's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Propagator carries trace context through message headers. Nil means
	// the global one (otel.GetTextMapPropagator) at the time of each call,
	// so setting it up later in main takes effect.
	Propagator propagation.TextMapPropagator
	// MaxBodyBytes is the largest webhook body herald accepts
	// (webhook.max_body_bytes). Open refuses, with ErrIncompatible, a
	// NATS server whose max_payload cannot hold a notification made
	// from such a body. Zero checks nothing.
	MaxBodyBytes int64
}

// apiTimeout bounds a JetStream API request made without a deadline of
// its own, e.g. creating a stream at start. A fresh cluster, or one
// electing a leader, leaves such requests unanswered: Open fails sooner
// and its caller tries again. Publishes have their own deadline
// (publish_timeout, tried again every second within it).
const apiTimeout = 5 * time.Second

// ErrIncompatible marks a reason Open fails that will not pass by itself:
// the cluster's limits or the queue's contents conflict with the config.
// Any other failure of Open (a server unreachable, an election under way)
// may pass, and opening again later may succeed.
var ErrIncompatible = errors.New("incompatible with the config")

// PayloadHeadroom is what a stored notification may need beyond the
// webhook body it was made from: its message headers and the text herald
// writes. A NATS server's max_payload must be at least
// webhook.max_body_bytes plus this.
const PayloadHeadroom = 64 << 10

// Queue is herald's durable store and work queue. Its methods are safe for
// concurrent use.
type Queue struct {
	cfg  Config
	log  *slog.Logger
	prop propagation.TextMapPropagator

	srv *server.Server // nil with an external cluster
	nc  *nats.Conn
	js  jetstream.JetStream

	stream  jetstream.Stream
	dlq     jetstream.Stream
	records jetstream.KeyValue
	threads jetstream.KeyValue
	groups  jetstream.KeyValue
	// membersKV lists the replicas on a cluster (members.go); nil on the
	// embedded server, where this herald is the only one.
	membersKV jetstream.KeyValue
	consumers []jetstream.Consumer
	flights   flights
	// parts are the partitions while Consume runs, for metrics.
	parts atomic.Pointer[[]*part]

	m *metrics
	// pullExpiry bounds each pull request; a consumer that stops answering
	// is noticed after about this long. A herald sends a new pull request
	// at least this often, which keeps its pin.
	pullExpiry time.Duration
	// pinnedTTL is how long a partition stays pinned to a herald that
	// sends no pull request: how long a dead herald's partitions wait
	// before another replica takes them.
	pinnedTTL time.Duration
	// findMaxReads bounds the stream reads of a search for a notification
	// without a record (find).
	findMaxReads int

	// storeDir and maxStore are the embedded server's store and its limit.
	storeDir string
	maxStore int64
	storage  storage
	// stopMarks stops keeping the stream's mark (damage.go).
	stopMarks func()

	closeOnce sync.Once
}

var _ store.Store = (*Queue)(nil)

// Open starts the embedded server or connects to the cluster, and creates or
// updates herald's streams, buckets and consumers. cfg must have passed
// Validate. ctx bounds the setup only.
func Open(ctx context.Context, cfg Config, opts Options) (*Queue, error) {
	q := &Queue{cfg: cfg, log: opts.Logger, prop: opts.Propagator, pullExpiry: defaultPullExpiry, pinnedTTL: defaultPinnedTTL, findMaxReads: defaultFindMaxReads}
	if q.log == nil {
		q.log = slog.Default()
	}
	q.log = q.log.With("component", "queue")
	if cfg.Partitions < 1 || cfg.MaxInHand < 1 || cfg.Replicas < 1 {
		return nil, errors.New("queue: config not validated")
	}

	var err error
	if cfg.URL == "" {
		err = q.startEmbedded(opts.DataDir)
	} else {
		err = q.connect()
	}
	if err != nil {
		q.Close()
		return nil, err
	}
	q.js, err = jetstream.New(q.nc, jetstream.WithDefaultTimeout(apiTimeout))
	if err != nil {
		q.Close()
		return nil, fmt.Errorf("queue: %w", err)
	}
	if err := q.checkPayload(opts.MaxBodyBytes); err != nil {
		q.Close()
		return nil, err
	}
	if err := q.setup(ctx); err != nil {
		q.Close()
		return nil, fmt.Errorf("queue: %w", err)
	}
	q.m = newMetrics(q)
	if err := q.checkDamage(ctx); err != nil {
		q.Close()
		return nil, fmt.Errorf("queue: check the stream for damage: %w", err)
	}
	q.stopMarks = q.keepMarks()
	if q.srv != nil {
		q.watchStorage()
	}
	if opts.Registerer != nil {
		if err := q.m.register(opts.Registerer); err != nil {
			q.Close()
			return nil, fmt.Errorf("queue: metrics: %w", err)
		}
	}
	return q, nil
}

func (q *Queue) startEmbedded(dataDir string) error {
	if dataDir == "" {
		return errors.New("queue: data_dir is required for the embedded server")
	}
	dir := storeDirOf(dataDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	q.storeDir = dir
	q.maxStore = int64(q.cfg.MaxStorage)
	if q.maxStore == 0 {
		// The disk's size: JetStream's own default (75% of the room free
		// at start) would stay fixed however the disk grows or empties.
		total, err := diskBytes(dir)
		if err != nil {
			return fmt.Errorf("queue: size of the disk of %s: %w", dir, err)
		}
		q.maxStore = total
	}
	o := &server.Options{
		ServerName: "herald",
		JetStream:  true,
		StoreDir:   dir,
		NoSigs:     true,
		NoLog:      true,
		DontListen: true,
		// Alertmanager groups with many alerts can exceed NATS's default
		// of 1 MiB.
		MaxPayload: EmbeddedMaxPayload,
		// JetStreamMaxStore is set below from the config or the disk.
		// Keep the server's own HTTP monitoring, cluster and leafnode
		// listeners closed.
		HTTPPort: 0,
	}
	switch q.cfg.Sync {
	case SyncAlways:
		o.SyncAlways = true
	default:
		o.SyncInterval = q.cfg.SyncInterval
	}
	if q.cfg.Listen != "" {
		host, port, err := net.SplitHostPort(q.cfg.Listen)
		if err != nil {
			return fmt.Errorf("queue: listen: %w", err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return fmt.Errorf("queue: listen: bad port %q", port)
		}
		if p == 0 {
			p = server.RANDOM_PORT
		}
		o.DontListen = false
		o.Host, o.Port = host, p
		if o.Host == "" {
			o.Host = "0.0.0.0"
		}
		if q.cfg.Token.IsSet() {
			o.Authorization = q.cfg.Token.Value()
		}
	}
	o.JetStreamMaxStore = q.maxStore
	srv, err := server.NewServer(o)
	if err != nil {
		return fmt.Errorf("queue: embedded server: %w", err)
	}
	srv.SetLoggerV2(slogLogger{q.log.With("nats", "server")}, false, false, false)
	srv.Start()
	q.srv = srv
	if !srv.ReadyForConnections(30 * time.Second) {
		return errors.New("queue: embedded server did not become ready")
	}
	copts := []nats.Option{
		nats.Name("herald"),
		nats.InProcessServer(srv),
		// Fail publishes at once while disconnected instead of buffering
		// them: Put must answer Unavailable rather than hang.
		nats.ReconnectBufSize(-1),
		nats.MaxReconnects(-1),
	}
	if q.cfg.Token.IsSet() {
		copts = append(copts, nats.Token(q.cfg.Token.Value()))
	}
	nc, err := nats.Connect("", copts...)
	if err != nil {
		return fmt.Errorf("queue: connect in process: %w", err)
	}
	q.nc = nc
	return nil
}

func (q *Queue) connect() error {
	copts := []nats.Option{
		nats.Name("herald"),
		nats.ReconnectBufSize(-1),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.RetryOnFailedConnect(false),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				q.log.Warn("disconnected from NATS", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			// ConnectedUrlRedacted hides a password but not a token.
			q.log.Info("reconnected to NATS", "server", secret.RedactURLs(nc.ConnectedUrl()))
		}),
	}
	if q.cfg.CredentialsFile != "" {
		copts = append(copts, nats.UserCredentials(q.cfg.CredentialsFile))
	}
	if q.cfg.Token.IsSet() {
		copts = append(copts, nats.Token(q.cfg.Token.Value()))
	}
	nc, err := nats.Connect(q.cfg.URL, copts...)
	if err != nil {
		// nats errors name the server, never the token.
		return fmt.Errorf("queue: connect to %s: %s", secret.RedactURLs(q.cfg.URL), secret.RedactURLs(err.Error()))
	}
	q.nc = nc
	var known []string
	for _, u := range nc.Servers() {
		known = append(known, secret.RedactURLs(u))
	}
	q.log.Info("connected to NATS",
		"server", secret.RedactURLs(nc.ConnectedUrl()), "server_name", nc.ConnectedServerName(),
		"version", nc.ConnectedServerVersion(), "cluster", nc.ConnectedClusterName(),
		"max_payload", Size(nc.MaxPayload()), "known_servers", known)
	return nil
}

// checkPayload refuses a server whose max_payload cannot hold what the
// webhook accepts: such a notification could not be stored whole.
func (q *Queue) checkPayload(maxBody int64) error {
	if maxBody <= 0 {
		return nil
	}
	have, need := q.nc.MaxPayload(), maxBody+PayloadHeadroom
	if have >= need {
		return nil
	}
	return fmt.Errorf("queue: %w: the NATS server's max_payload is %v, and a webhook body of up to webhook.max_body_bytes (%v) needs %v: "+
		"set max_payload to at least %v in the NATS servers' config (deploy/nats/nats.conf sets 8MB), or lower webhook.max_body_bytes to %v",
		ErrIncompatible, Size(have), Size(maxBody), Size(need), Size(need), Size(max(have-PayloadHeadroom, 0)))
}

func (q *Queue) setup(ctx context.Context) error {
	r := q.cfg.Replicas
	var err error
	q.stream, err = q.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        StreamName,
		Description: "herald notifications, partitioned by group key",
		// See format.go.
		Subjects:          []string{subjectPrefix + "*", wakePrefix + "*", schedulePrefix + "*.*"},
		AllowMsgSchedules: true,
		Retention:         jetstream.LimitsPolicy,
		MaxAge:            q.cfg.Retention,
		Duplicates:        q.cfg.DuplicateWindow,
		Storage:           jetstream.FileStorage,
		Replicas:          r,
		Discard:           jetstream.DiscardOld,
		AllowDirect:       true,
	})
	if err != nil {
		return fmt.Errorf("stream %s: %w", StreamName, err)
	}
	q.dlq, err = q.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        DeadLetterName,
		Description: "herald dead letters, one per notification id, kept until replayed",
		Subjects:    []string{dlqPrefix + "*"},
		Retention:   jetstream.LimitsPolicy,
		// One dead letter per notification: a second one replaces the first.
		MaxMsgsPerSubject: 1,
		Duplicates:        q.cfg.DuplicateWindow,
		Storage:           jetstream.FileStorage,
		Replicas:          r,
		AllowDirect:       true,
	})
	if err != nil {
		return fmt.Errorf("stream %s: %w", DeadLetterName, err)
	}
	q.records, err = q.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      RecordsBucket,
		Description: "herald delivery records by notification id",
		History:     1,
		TTL:         q.cfg.Retention,
		Storage:     jetstream.FileStorage,
		Replicas:    r,
	})
	if err != nil {
		return fmt.Errorf("bucket %s: %w", RecordsBucket, err)
	}
	q.threads, err = q.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      ThreadsBucket,
		Description: "herald chat message per sink and group key",
		History:     1,
		TTL:         q.cfg.Retention,
		Storage:     jetstream.FileStorage,
		Replicas:    r,
	})
	if err != nil {
		return fmt.Errorf("bucket %s: %w", ThreadsBucket, err)
	}
	q.groups, err = q.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      GroupsBucket,
		Description: "herald groups held back (retrying, throttled, broken chain) with their waiting notifications",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    r,
	})
	if err != nil {
		return fmt.Errorf("bucket %s: %w", GroupsBucket, err)
	}
	if err := q.checkFormat(ctx); err != nil {
		return err
	}
	if q.cfg.URL != "" {
		q.membersKV, err = q.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      MembersBucket,
			Description: "herald replicas sharing the partitions, one key each, written every second",
			History:     1,
			// A replica that died without deleting its key: the others
			// stop counting it after seconds (memberTTL); this only
			// removes the key.
			TTL:      time.Minute,
			Storage:  jetstream.MemoryStorage,
			Replicas: r,
		})
		if err != nil {
			return fmt.Errorf("bucket %s: %w", MembersBucket, err)
		}
	}
	if err := q.checkStrandedPartitions(ctx); err != nil {
		return err
	}
	q.consumers = make([]jetstream.Consumer, q.cfg.Partitions)
	for p := range q.cfg.Partitions {
		if q.consumers[p], err = q.ensureConsumer(ctx, p); err != nil {
			return err
		}
	}
	return nil
}

// consumerConfig is partition p's consumer: pinned to one herald at a time,
// many notifications in hand, short ack_wait kept alive while in hand.
func (q *Queue) consumerConfig(p int) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:        consumerName(p),
		Description:    "herald partition " + strconv.Itoa(p),
		FilterSubjects: []string{partitionSubject(p), wakeSubject(p)},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        q.cfg.AckWait,
		// The groups of a partition are ordered by the herald it is
		// pinned to, which holds up to max_in_hand of them in memory and
		// parks groups that must wait.
		MaxAckPending: q.cfg.MaxInHand,
		// Unlimited: when JetStream gives up on a message it only emits an
		// advisory, which would drop the notification silently. The
		// dispatcher's retry budget decides when to dead-letter.
		MaxDeliver:     -1,
		Replicas:       q.cfg.Replicas,
		PriorityPolicy: jetstream.PriorityPolicyPinned,
		PriorityGroups: []string{priorityGroup},
		PinnedTTL:      q.pinnedTTL,
	}
}

// ensureConsumer creates or updates partition p's durable consumer.
func (q *Queue) ensureConsumer(ctx context.Context, p int) (jetstream.Consumer, error) {
	cfg := q.consumerConfig(p)
	existing, err := q.stream.Consumer(ctx, consumerName(p))
	switch {
	case err == nil:
		if sameConsumer(existing.CachedInfo().Config, cfg) {
			// An update would end the partition's pin, and with it the
			// work of the herald that serves it (several start together).
			return existing, nil
		}
	case !errors.Is(err, jetstream.ErrConsumerNotFound):
		return nil, fmt.Errorf("consumer %s: %w", consumerName(p), err)
	}
	c, err := q.stream.CreateOrUpdateConsumer(ctx, cfg)
	if errors.Is(err, jetstream.ErrConsumerMultipleFilterSubjectsNotSupported) {
		// The first update of a consumer after the server started is
		// answered with the configuration it was restored with (NATS
		// 2.15), so an update with two filter subjects can look refused
		// although it was applied. Ask again; a server older than 2.10
		// really keeps one filter subject, and then Open fails here.
		c, err = q.stream.Consumer(ctx, consumerName(p))
		if err == nil && !slices.Equal(c.CachedInfo().Config.FilterSubjects, cfg.FilterSubjects) {
			err = jetstream.ErrConsumerMultipleFilterSubjectsNotSupported
		}
	}
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", consumerName(p), err)
	}
	return c, nil
}

// sameConsumer reports whether a consumer's configuration already is want
// in everything herald sets.
func sameConsumer(have, want jetstream.ConsumerConfig) bool {
	return have.Durable == want.Durable && have.Description == want.Description &&
		slices.Equal(have.FilterSubjects, want.FilterSubjects) &&
		have.AckWait == want.AckWait && have.MaxAckPending == want.MaxAckPending &&
		have.MaxDeliver == want.MaxDeliver && have.PriorityPolicy == want.PriorityPolicy &&
		slices.Equal(have.PriorityGroups, want.PriorityGroups) && have.PinnedTTL == want.PinnedTTL &&
		(have.Replicas == want.Replicas || have.Replicas == 0 && want.Replicas == 1)
}

// checkStrandedPartitions refuses a smaller partition count while a
// partition beyond it still holds notifications nobody would consume.
func (q *Queue) checkStrandedPartitions(ctx context.Context) error {
	names := q.stream.ConsumerNames(ctx)
	for name := range names.Name() {
		n, ok := strings.CutPrefix(name, consumerPrefix)
		if !ok {
			continue
		}
		p, err := strconv.Atoi(n)
		if err != nil || p < q.cfg.Partitions {
			continue
		}
		c, err := q.stream.Consumer(ctx, name)
		if err != nil {
			return fmt.Errorf("consumer %s: %w", name, err)
		}
		info := c.CachedInfo()
		if info.NumPending+uint64(info.NumAckPending) > 0 {
			return fmt.Errorf("%w: partitions: %d, but partition %d still holds %d undelivered notifications; "+
				"run with the previous partition count until the queue is empty",
				ErrIncompatible, q.cfg.Partitions, p, info.NumPending+uint64(info.NumAckPending))
		}
	}
	if err := names.Err(); err != nil {
		return fmt.Errorf("list consumers: %w", err)
	}
	keys, err := q.groups.ListKeys(ctx)
	if err != nil {
		return fmt.Errorf("list parked groups: %w", err)
	}
	for key := range keys.Keys() {
		n, _, _ := strings.Cut(key, ".")
		if p, err := strconv.Atoi(n); err == nil && p >= q.cfg.Partitions {
			return fmt.Errorf("%w: partitions: %d, but partition %d still holds a parked group; "+
				"run with the previous partition count until the queue is empty", ErrIncompatible, q.cfg.Partitions, p)
		}
	}
	return nil
}

// Ready reports whether a publish can succeed now, for /readyz: JetStream
// answers and, on the embedded server, the store takes writes.
func (q *Queue) Ready(ctx context.Context) error {
	if q.nc == nil || !q.nc.IsConnected() {
		return fmt.Errorf("queue: not connected: %w", store.ErrUnavailable)
	}
	if q.storage.broken.Load() {
		return fmt.Errorf("queue: %w: %w", store.ErrUnavailable, errStorageFull)
	}
	if _, err := q.stream.Info(ctx); err != nil {
		return fmt.Errorf("queue: %w: %w", store.ErrUnavailable, err)
	}
	return nil
}

// Close drains the connection (flushing acknowledgements) and shuts the
// embedded server down. Call it after Consume has returned.
func (q *Queue) Close() error {
	var err error
	q.closeOnce.Do(func() {
		if q.storage.stop != nil {
			q.storage.stop()
		}
		if q.stopMarks != nil {
			q.stopMarks()
		}
		if q.nc != nil {
			closed := make(chan struct{})
			q.nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
			if derr := q.nc.Drain(); derr != nil {
				q.nc.Close()
			} else {
				select {
				case <-closed:
				case <-time.After(10 * time.Second):
					q.nc.Close()
				}
			}
		}
		if q.srv != nil {
			q.srv.Shutdown()
			q.srv.WaitForShutdown()
		}
	})
	return err
}

func consumerName(p int) string { return consumerPrefix + strconv.Itoa(p) }

// slogLogger adapts slog to the NATS server's logger.
type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Noticef(format string, v ...any) { s.l.Debug(fmt.Sprintf(format, v...)) }
func (s slogLogger) Warnf(format string, v ...any)   { s.l.Warn(fmt.Sprintf(format, v...)) }
func (s slogLogger) Fatalf(format string, v ...any)  { s.l.Error(fmt.Sprintf(format, v...)) }
func (s slogLogger) Errorf(format string, v ...any)  { s.l.Error(fmt.Sprintf(format, v...)) }
func (s slogLogger) Debugf(format string, v ...any)  { s.l.Debug(fmt.Sprintf(format, v...)) }
func (s slogLogger) Tracef(format string, v ...any)  {}
