package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/gen/herald/v1/heraldv1connect"
	"github.com/herald-notify/herald/internal/server"
	"github.com/herald-notify/herald/internal/service"
	"github.com/herald-notify/herald/internal/store/storetest"
)

type certs struct {
	caPEM              []byte
	serverCert, client tls.Certificate
	dir                string
}

// makeCerts issues a CA, a server certificate for 127.0.0.1 and a client
// certificate, and writes the CA and server files for the config.
func makeCerts(t *testing.T) *certs {
	t.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey := key()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "herald test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, usage x509.ExtKeyUsage) (tls.Certificate, []byte, []byte) {
		k := key()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "leaf"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kb, _ := x509.MarshalECPrivateKey(k)
		certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
		c, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return c, certPEM, keyPEM
	}
	c := &certs{caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), dir: t.TempDir()}
	var srvCert, srvKey []byte
	c.serverCert, srvCert, srvKey = issue(2, x509.ExtKeyUsageServerAuth)
	c.client, _, _ = issue(3, x509.ExtKeyUsageClientAuth)
	for name, b := range map[string][]byte{"ca.pem": c.caPEM, "server.pem": srvCert, "server-key.pem": srvKey} {
		if err := os.WriteFile(filepath.Join(c.dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func TestMutualTLS(t *testing.T) {
	c := makeCerts(t)
	tlsOpts := &server.TLS{
		CertFile:     filepath.Join(c.dir, "server.pem"),
		KeyFile:      filepath.Join(c.dir, "server-key.pem"),
		ClientCAFile: filepath.Join(c.dir, "ca.pem"),
	}
	_, l := serveTLS(t, tlsOpts)

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.caPEM)
	url := "https://" + l.Addr().String()
	publish := func(clientCerts []tls.Certificate, opts ...connect.ClientOption) error {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: clientCerts}, ForceAttemptHTTP2: true}
		defer tr.CloseIdleConnections()
		client := heraldv1connect.NewNotificationServiceClient(&http.Client{Transport: tr}, url, opts...)
		_, err := client.Publish(t.Context(), connect.NewRequest(&heraldv1.PublishRequest{Notification: valid()}))
		return err
	}
	if err := publish([]tls.Certificate{c.client}); err != nil {
		t.Errorf("Publish with a client certificate: %v", err)
	}
	if err := publish([]tls.Certificate{c.client}, connect.WithGRPC()); err != nil {
		t.Errorf("gRPC Publish over TLS with a client certificate: %v", err)
	}
	if err := publish(nil); err == nil {
		t.Error("Publish without a client certificate succeeded; want the handshake refused")
	}
	if err := publish([]tls.Certificate{c.serverCert}); err == nil {
		t.Error("Publish with a certificate not meant for clients succeeded")
	}
}

// TestSetTLS: a renewed certificate is served from the next handshake on,
// without a restart; a file that cannot be used changes nothing.
func TestSetTLS(t *testing.T) {
	first, renewed := makeCerts(t), makeCerts(t)
	opts := func(c *certs) server.TLS {
		return server.TLS{CertFile: filepath.Join(c.dir, "server.pem"), KeyFile: filepath.Join(c.dir, "server-key.pem")}
	}
	o := opts(first)
	srv, l := serveTLS(t, &o)

	// served returns the certificate a new connection is shown.
	served := func() *x509.Certificate {
		conn, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		st := conn.ConnectionState()
		if st.NegotiatedProtocol != "h2" {
			t.Errorf("negotiated %q, want h2", st.NegotiatedProtocol)
		}
		return st.PeerCertificates[0]
	}
	if got := served(); !got.Equal(first.serverCert.Leaf) {
		t.Fatal("the first certificate is not the one served")
	}
	if err := srv.SetTLS(opts(renewed)); err != nil {
		t.Fatal(err)
	}
	if got := served(); !got.Equal(renewed.serverCert.Leaf) {
		t.Error("after SetTLS a new connection is not shown the renewed certificate")
	}
	bad := opts(renewed)
	bad.KeyFile = filepath.Join(first.dir, "server-key.pem") // not the certificate's key
	if err := srv.SetTLS(bad); err == nil {
		t.Error("SetTLS with a key that does not match the certificate succeeded")
	}
	if got := served(); !got.Equal(renewed.serverCert.Leaf) {
		t.Error("a refused SetTLS changed the certificate served")
	}

	plain, err := server.New(server.Options{Service: service.New(storetest.NewMemory(), service.Options{}), Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	if err := plain.SetTLS(opts(first)); err == nil {
		t.Error("SetTLS on a server started without TLS succeeded")
	}
}

// serveTLS runs a server with TLS options o on a loopback port until the
// test ends.
func serveTLS(t *testing.T, o *server.TLS) (*server.Server, net.Listener) {
	t.Helper()
	srv, err := server.New(server.Options{TLS: o, Service: service.New(storetest.NewMemory(), service.Options{}), Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() { cancel(); <-done })
	return srv, l
}
