package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// loadSpec says how to fire webhooks: at a fixed concurrency (each worker
// sends the next webhook when the previous one was answered) or at a fixed
// rate (one webhook every 1/rate, each in its own goroutine, at most
// maxInFlight outstanding). Both stop after duration or maxCount webhooks.
type loadSpec struct {
	url string
	// urls, when set, replaces url: webhook i goes to urls[i%len(urls)].
	urls        []string
	concurrency int
	rate        float64
	duration    time.Duration
	maxCount    int
	maxInFlight int
	// firstSeq is the load id of the first webhook; each run uses its own
	// range so that ids never repeat within one data dir.
	firstSeq  int
	templates []*template
	timeout   time.Duration
	// retry5xx sends a webhook again after a 5xx or a transport error, as
	// Alertmanager does (see retryWait), until timeout has passed since
	// its first attempt.
	retry5xx bool
}

// sent is the fate of one webhook.
type sent struct {
	seq    int
	start  time.Time // request started
	acked  time.Time // 200 received (zero otherwise)
	status int       // of the last attempt; 0: transport error
	// retries counts the attempts after the first (loadSpec.retry5xx).
	retries int
}

// loadResult is what one run measured.
type loadResult struct {
	spec     loadSpec
	elapsed  time.Duration
	sent     []sent
	ok       int
	errs     map[string]int
	behind   int // rate mode: ticks skipped because maxInFlight were outstanding
	inflight int // the most outstanding at once
}

func newClient(conns int, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			MaxConnsPerHost:     conns,
			IdleConnTimeout:     30 * time.Second,
			DisableCompression:  true,
		},
	}
}

// runLoad fires webhooks as spec says and waits for every answer (each
// bounded by spec.timeout).
func runLoad(ctx context.Context, spec loadSpec) *loadResult {
	parent := ctx // ctx becomes the run's deadline below; retries outlast it
	conns := spec.concurrency
	if spec.rate > 0 {
		conns = spec.maxInFlight
	}
	client := newClient(conns, spec.timeout)
	defer client.CloseIdleConnections()

	res := &loadResult{spec: spec, errs: map[string]int{}}
	var (
		mu       sync.Mutex
		next     atomic.Int64
		inflight atomic.Int64
		wg       sync.WaitGroup
	)
	record := func(s sent, errKey string) {
		mu.Lock()
		defer mu.Unlock()
		res.sent = append(res.sent, s)
		if s.status == http.StatusOK {
			res.ok++
		} else {
			res.errs[errKey]++
		}
	}
	fire := func(i int) {
		n := inflight.Add(1)
		defer inflight.Add(-1)
		mu.Lock()
		res.inflight = max(res.inflight, int(n))
		mu.Unlock()
		seq := spec.firstSeq + i
		body := spec.templates[i%len(spec.templates)].stamp(seq)
		url := spec.url
		if len(spec.urls) > 0 {
			url = spec.urls[i%len(spec.urls)]
		}
		s, errKey := post(ctx, client, url, body)
		for first := s.start; spec.retry5xx && (s.status == 0 || s.status >= 500); {
			wait := retryWait(s.retries, rand.Float64())
			if time.Since(first)+wait >= spec.timeout || parent.Err() != nil {
				break
			}
			time.Sleep(wait)
			n := s.retries + 1
			s, errKey = post(ctx, client, url, body)
			s.start, s.retries = first, n
		}
		s.seq = seq
		record(s, errKey)
	}

	ctx, cancel := context.WithTimeout(ctx, spec.duration)
	defer cancel()
	begin := time.Now()
	if spec.rate <= 0 {
		for range spec.concurrency {
			wg.Go(func() {
				for ctx.Err() == nil {
					i := int(next.Add(1) - 1)
					if i >= spec.maxCount {
						return
					}
					fire(i)
				}
			})
		}
	} else {
		interval := time.Duration(float64(time.Second) / spec.rate)
		sem := make(chan struct{}, spec.maxInFlight)
		t := time.NewTicker(interval)
		due := 0
	loop:
		for i := 0; i < spec.maxCount; {
			select {
			case <-ctx.Done():
				break loop
			case now := <-t.C:
				// A ticker drops ticks under load: send what is due since
				// the start, so the rate holds on average.
				due = min(int(now.Sub(begin)/interval)+1, spec.maxCount)
			}
			for ; i < due; i++ {
				select {
				case sem <- struct{}{}:
				default:
					res.behind++
					continue
				}
				j := i
				wg.Go(func() {
					defer func() { <-sem }()
					fire(j)
				})
			}
		}
		t.Stop()
	}
	wg.Wait()
	res.elapsed = time.Since(begin)
	return res
}

// post sends one webhook; the request is not tied to the run's deadline, so
// every webhook sent gets its answer (bounded by the client's timeout).
func post(ctx context.Context, client *http.Client, url string, body []byte) (sent, string) {
	req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return sent{start: time.Now()}, err.Error()
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Alertmanager/0.28.1")
	s := sent{start: time.Now()}
	resp, err := client.Do(req)
	if err != nil {
		return s, "transport error"
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	s.status = resp.StatusCode
	if resp.StatusCode == http.StatusOK {
		s.acked = time.Now()
		return s, ""
	}
	return s, fmt.Sprintf("HTTP %d", resp.StatusCode)
}

// retryWait is the wait before retry n+1 (n from 0) of a webhook, as
// Alertmanager's notifier backs off (cenkalti/backoff's defaults): 500 ms
// growing 1.5 times per retry up to 60 s, randomised by ±50% with r in
// [0, 1).
func retryWait(n int, r float64) time.Duration {
	d := 500 * time.Millisecond
	for range n {
		if d = d * 3 / 2; d >= time.Minute {
			d = time.Minute
			break
		}
	}
	return time.Duration(float64(d) * (0.5 + r))
}

// latencies returns the request latencies of the acknowledged webhooks.
func (r *loadResult) latencies() []time.Duration {
	var out []time.Duration
	for _, s := range r.sent {
		if s.status == http.StatusOK {
			out = append(out, s.acked.Sub(s.start))
		}
	}
	return out
}

// throughput is acknowledged webhooks per second of the run.
func (r *loadResult) throughput() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.ok) / r.elapsed.Seconds()
}

// percentile returns the p-th percentile (0..100) by nearest rank, or 0
// for no samples. It sorts d.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	rank := int(p/100*float64(len(d))+0.999999) - 1
	return d[min(max(rank, 0), len(d)-1)]
}
