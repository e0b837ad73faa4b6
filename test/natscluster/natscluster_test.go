package natscluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-notify/herald/internal/testutil"
	"github.com/herald-notify/herald/test/natscluster"
)

// deploy/nats/nats.conf forms a cluster that holds a stream at three
// replicas, elects a new leader when the leader is killed, takes the node
// back after a restart, and moves the leadership off a node stopped with
// SIGTERM.
func TestClusterFromDeployConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nats-server processes")
	}
	c := natscluster.Start(t, 3)
	nc, err := nats.Connect(c.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if got := nc.MaxPayload(); got != 8<<20 {
		t.Errorf("max_payload = %d, want 8MB as deploy/nats/nats.conf sets", got)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, "a stream at three replicas", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t"}, Replicas: 3})
		return err == nil
	})
	old := c.StreamLeader("T")
	c.Kill(old)
	testutil.Eventually(t, 30*time.Second, "a new leader after the kill", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, "T")
		if err != nil {
			return false
		}
		cl := s.CachedInfo().Cluster
		return cl != nil && cl.Leader != "" && cl.Leader != c.Name(old)
	})
	c.Restart(old)
	testutil.Eventually(t, 30*time.Second, "the restarted node current again", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, "T")
		if err != nil || s.CachedInfo().Cluster == nil {
			return false
		}
		for _, r := range s.CachedInfo().Cluster.Replicas {
			if r.Name == c.Name(old) {
				return r.Current
			}
		}
		return s.CachedInfo().Cluster.Leader == c.Name(old)
	})

	stopped := c.StreamLeader("T")
	c.Stop(stopped)
	testutil.Eventually(t, 30*time.Second, "a new leader after SIGTERM", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		_, err := js.Publish(ctx, "t", []byte("after the stop"))
		return err == nil && c.StreamLeader("T") != stopped
	})
	c.Restart(stopped)
}
