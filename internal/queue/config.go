package queue

import (
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/herald-notify/herald/internal/secret"
)

// Sync policies of the embedded server's file store.
const (
	// SyncAlways fsyncs every write before JetStream acknowledges it. An
	// acknowledged notification survives kill -9 of herald, a kernel panic and
	// a power loss. Every publish pays for one fsync.
	SyncAlways = "always"
	// SyncInterval writes every message to the data file before JetStream
	// acknowledges it (a write(2) into the OS page cache) and fsyncs every
	// sync_interval. An acknowledged notification survives kill -9 of herald
	// and a restart of herald, but a kernel panic or power loss of the host
	// can lose what was acknowledged in the last sync_interval.
	SyncInterval = "interval"
)

// Config is the `queue` section of herald's config file.
//
// With url empty herald runs an embedded NATS server with JetStream storing
// in <data_dir>/jetstream, reached in process; no port is opened unless
// listen is set. With url set herald connects to that NATS cluster instead
// and creates its streams and buckets there with the given replica count;
// the cluster's own sync settings then decide what survives a power loss,
// and an acknowledged notification is on a majority of the replicas.
type Config struct {
	// URL lists NATS servers, comma-separated ("nats://a:4222,nats://b:4222").
	// Empty runs the embedded server.
	URL string `yaml:"url"`
	// CredentialsFile is a NATS .creds file (JWT + nkey) for url.
	CredentialsFile string `yaml:"credentials_file"`
	// Token authenticates to url, or is required from clients of the
	// embedded server's listen port. At most one of token and token_file.
	Token     secret.String `yaml:"token"`
	TokenFile string        `yaml:"token_file"`
	// Listen exposes the embedded server on host:port (e.g. for the nats
	// CLI). Empty opens no port. Only without url.
	Listen string `yaml:"listen"`

	// Replicas is the replica count of herald's streams and buckets on a
	// cluster (1, 3 or 5; default 1). The embedded server allows only 1.
	Replicas int `yaml:"replicas"`
	// Partitions is how many parts notifications are spread over by group
	// key (default 16). Each is served by one herald replica at a time;
	// within it, groups are delivered independently. Change it only while
	// the queue is empty: herald refuses to start while a partition beyond
	// the new count still holds unacknowledged notifications.
	Partitions int `yaml:"partitions"`
	// MaxInHand bounds how many notifications of one partition this herald
	// holds at once, handed out by JetStream and not yet answered (default
	// 256). Groups held back by a retry, a throttle or a broken chain do
	// not count: they are parked in the queue's groups bucket.
	MaxInHand int `yaml:"max_in_hand"`
	// Concurrency is no longer used: attempts in flight are bounded by
	// dispatch.max_in_flight and dispatch.max_in_flight_per_sink. It is
	// still accepted so that older config files load; herald logs a
	// warning when it is set.
	Concurrency int `yaml:"concurrency,omitempty"`

	// Sync is the embedded server's fsync policy: "interval" (default) or
	// "always"; see SyncAlways and SyncInterval for what each survives.
	// Only without url.
	Sync string `yaml:"sync"`
	// SyncInterval is the fsync period of the "interval" policy (default 2m,
	// as NATS).
	SyncInterval time.Duration `yaml:"sync_interval"`
	// MaxStorage bounds what the embedded server stores ("20GiB"); beyond
	// it publishes get 503 until retention frees room. Default: the size
	// of data_dir's disk, so that the disk itself is the limit and a
	// grown disk counts after a restart. Only without url.
	MaxStorage Size `yaml:"max_storage"`

	// DuplicateWindow is how long an idempotency key is remembered
	// (default 45s): what tells an HA peer's copy from Alertmanager's
	// repeat of the same notification. Alertmanager's peers send their
	// copies peer_timeout (15s) apart per position in the cluster (15s for
	// a pair, 30s for three), and a retry after a lost answer follows
	// within seconds; a repeat comes after repeat_interval, which is at
	// least group_interval and in practice a minute or more. So the window
	// covers the copies and lets every repeat through, where it becomes a
	// reminder. Raise it for more than three peers or a longer
	// peer_timeout, and keep it below the shortest repeat_interval. At
	// most retention.
	DuplicateWindow time.Duration `yaml:"duplicate_window"`
	// Retention is how long notifications and their delivery records are
	// kept (default 7d = 168h), delivered or not. Dead letters are kept
	// until replayed.
	Retention time.Duration `yaml:"retention"`
	// AckWait is how long a handed-out notification may go without an
	// answer or a progress signal before it is handed out again (default
	// 10s). herald signals progress every third of it. It bounds how long
	// a partition waits, after its herald died, for the notifications that
	// herald was delivering.
	AckWait time.Duration `yaml:"ack_wait"`
	// PublishTimeout bounds how long Put keeps trying to get JetStream's
	// acknowledgement (default 15s): long enough to outlast a stream leader
	// election after a node died, which NATS starts after 4-9s without a
	// heartbeat from the leader. Past it the caller gets Unavailable.
	PublishTimeout time.Duration `yaml:"publish_timeout"`
}

// Defaults of Config.
const (
	DefaultPartitions      = 16
	DefaultMaxInHand       = 256
	DefaultSyncInterval    = 2 * time.Minute
	DefaultDuplicateWindow = 45 * time.Second
	DefaultRetention       = 7 * 24 * time.Hour
	DefaultAckWait         = 10 * time.Second
	DefaultPublishTimeout  = 15 * time.Second
	maxPartitions          = 1024
	maxMaxInHand           = 100_000
)

// Validate fills defaults, resolves token_file, and reports the first
// invalid setting by its YAML key.
func (c *Config) Validate() error {
	if err := secret.Resolve(&c.Token, c.TokenFile, "token"); err != nil {
		return err
	}
	c.TokenFile = ""
	embedded := c.URL == ""
	if embedded {
		if c.CredentialsFile != "" {
			return errors.New("credentials_file: needs url (the embedded server has no accounts)")
		}
		if c.Token.IsSet() && c.Listen == "" {
			return errors.New("token: needs url or listen; the in-process connection needs no token")
		}
		if c.Listen != "" {
			host, _, err := net.SplitHostPort(c.Listen)
			if err != nil {
				return fmt.Errorf("listen: %w", err)
			}
			if !c.Token.IsSet() && !loopback(host) {
				return fmt.Errorf("listen: %s is reachable from other hosts and would give anyone there the whole JetStream API; set token (or token_file), or listen on 127.0.0.1", c.Listen)
			}
		}
	} else {
		if c.Listen != "" {
			return errors.New("listen: only for the embedded server (url is set)")
		}
		if c.Sync != "" || c.SyncInterval != 0 {
			return errors.New("sync: only for the embedded server; with url the NATS servers' own sync_interval applies")
		}
		if c.MaxStorage != 0 {
			return errors.New("max_storage: only for the embedded server; with url the NATS servers' own limits apply")
		}
		if c.CredentialsFile != "" && c.Token.IsSet() {
			return errors.New("token: set either credentials_file or token, not both")
		}
		if c.CredentialsFile != "" {
			// Read at every connect: a file herald cannot read would keep
			// it from ever opening the queue, so say so now.
			f, err := os.Open(c.CredentialsFile)
			if err != nil {
				return fmt.Errorf("credentials_file: %w", err)
			}
			f.Close()
		}
	}

	if c.Replicas == 0 {
		c.Replicas = 1
	}
	switch {
	case c.Replicas < 1 || c.Replicas > 5:
		return fmt.Errorf("replicas: %d is not between 1 and 5", c.Replicas)
	case embedded && c.Replicas != 1:
		return fmt.Errorf("replicas: %d needs a cluster (url); the embedded server holds one copy", c.Replicas)
	}

	if c.Partitions == 0 {
		c.Partitions = DefaultPartitions
	}
	if c.Partitions < 1 || c.Partitions > maxPartitions {
		return fmt.Errorf("partitions: %d is not between 1 and %d", c.Partitions, maxPartitions)
	}
	if c.MaxInHand == 0 {
		c.MaxInHand = DefaultMaxInHand
	}
	if c.MaxInHand < 1 || c.MaxInHand > maxMaxInHand {
		return fmt.Errorf("max_in_hand: %d is not between 1 and %d", c.MaxInHand, maxMaxInHand)
	}
	if c.Concurrency < 0 {
		return fmt.Errorf("concurrency: %d is negative", c.Concurrency)
	}

	if embedded {
		if c.Sync == "" {
			c.Sync = SyncInterval
		}
		switch c.Sync {
		case SyncAlways:
			if c.SyncInterval != 0 {
				return errors.New("sync_interval: only with sync: interval")
			}
		case SyncInterval:
			if c.SyncInterval == 0 {
				c.SyncInterval = DefaultSyncInterval
			}
			if c.SyncInterval < 0 {
				return fmt.Errorf("sync_interval: %v is negative", c.SyncInterval)
			}
		default:
			return fmt.Errorf("sync: %q is not %q or %q", c.Sync, SyncAlways, SyncInterval)
		}
	}

	for _, d := range []struct {
		key string
		v   *time.Duration
		def time.Duration
	}{
		{"retention", &c.Retention, DefaultRetention},
		{"duplicate_window", &c.DuplicateWindow, DefaultDuplicateWindow},
		{"ack_wait", &c.AckWait, DefaultAckWait},
		{"publish_timeout", &c.PublishTimeout, DefaultPublishTimeout},
	} {
		if *d.v == 0 {
			*d.v = d.def
		}
		if *d.v < 0 {
			return fmt.Errorf("%s: %v is negative", d.key, *d.v)
		}
	}
	if c.DuplicateWindow > c.Retention {
		return fmt.Errorf("duplicate_window: %v is longer than retention %v", c.DuplicateWindow, c.Retention)
	}
	if c.AckWait < time.Second {
		return fmt.Errorf("ack_wait: %v is shorter than 1s", c.AckWait)
	}
	return nil
}

// loopback reports whether host (a listen address's host) is reached only
// from this machine.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
