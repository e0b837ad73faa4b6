package queue

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
)

// A damaged data dir is reported at start: every notification stored and
// not yet delivered that the stream lost is counted in
// herald_queue_lost_total, and one whose delivery record names it gets
// that record set to LOST.
func TestDamagedDataDirReported(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, blk string)
	}{
		{"overwritten", func(t *testing.T, blk string) {
			f, err := os.OpenFile(blk, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			st, _ := f.Stat()
			if _, err := f.WriteAt(make([]byte, 256), st.Size()/2); err != nil {
				t.Fatal(err)
			}
		}},
		{"emptied", func(t *testing.T, blk string) {
			if err := os.Truncate(blk, 0); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(func(c *Config) { c.Partitions = 1 })
			e := openTest(t, dir, cfg)
			var ids []string
			for range 200 {
				n := notif("g", heraldv1.Severity_SEVERITY_INFO)
				n.Text = string(make([]byte, 600))
				ids = append(ids, mustPut(t, e.q, n))
			}
			// The last one was attempted once: it has a record.
			last := ids[len(ids)-1]
			if err := e.q.setState(t.Context(), last, 200, heraldv1.DeliveryState_DELIVERY_STATE_RETRYING); err != nil {
				t.Fatal(err)
			}
			e.q.Close()
			blks, _ := filepath.Glob(filepath.Join(storeDirOf(dir), "jetstream", "$G", "streams", StreamName, "msgs", "*.blk"))
			if len(blks) == 0 {
				t.Fatal("no message block")
			}
			tc.damage(t, blks[0])

			e2 := openTest(t, dir, cfg)
			n := testutil.ToFloat64(e2.q.m.lost)
			if n == 0 || n > 200 {
				t.Fatalf("herald_queue_lost_total = %v after damaging the block, want between 1 and 200", n)
			}
			t.Logf("%s block: %v notifications reported lost", tc.name, n)
			rec, err := e2.q.Record(t.Context(), last)
			if err != nil {
				t.Fatal(err)
			}
			if rec.GetState() != heraldv1.DeliveryState_DELIVERY_STATE_LOST {
				t.Errorf("record of a lost notification says %v, want LOST", rec.GetState())
			}
			if sum, err := e2.q.Get(t.Context(), last); err != nil || sum.GetDelivery().GetState() != heraldv1.DeliveryState_DELIVERY_STATE_LOST {
				t.Errorf("Get of a lost notification = %v, %v; want its LOST record", sum, err)
			}
		})
	}
}

// An undamaged restart reports nothing.
func TestRestartReportsNoLoss(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(nil)
	e := openTest(t, dir, cfg)
	for range 50 {
		mustPut(t, e.q, notif("g", heraldv1.Severity_SEVERITY_INFO))
	}
	e.q.Close()
	e2 := openTest(t, dir, cfg)
	if n := testutil.ToFloat64(e2.q.m.lost); n != 0 {
		t.Errorf("herald_queue_lost_total = %v after a clean restart", n)
	}
}

func TestSeqRanges(t *testing.T) {
	for _, tc := range []struct {
		in   []uint64
		want string
	}{
		{nil, ""},
		{[]uint64{4}, "4"},
		{[]uint64{1, 2, 3, 7, 9, 10}, "1-3,7,9-10"},
	} {
		if got := seqRanges(tc.in); got != tc.want {
			t.Errorf("seqRanges(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
