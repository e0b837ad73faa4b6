package app

import (
	"context"
	"strings"

	"connectrpc.com/connect"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/gen/herald/v1/heraldv1connect"
	"github.com/herald-notify/herald/internal/shim"
	"github.com/herald-notify/herald/internal/telemetry"
)

// tracedPublisher gives the shim's in-process Publish the span a Connect
// call through otelconnect would have, so a trace reads webhook → Publish →
// dispatch whether the shim runs in process or in front of a remote hub.
type tracedPublisher struct{ next shim.Publisher }

func (p tracedPublisher) Publish(ctx context.Context, req *connect.Request[heraldv1.PublishRequest]) (*connect.Response[heraldv1.PublishResponse], error) {
	ctx, span := otel.Tracer("herald/app").Start(ctx, strings.TrimPrefix(heraldv1connect.NotificationServicePublishProcedure, "/"))
	defer span.End()
	// Attributes only for a span that keeps them: building them for one
	// that does not (every trace herald starts while nothing exports)
	// costs allocations per notification. herald's samplers never look at
	// start attributes.
	if span.IsRecording() {
		span.SetAttributes(
			attribute.String("rpc.system", "connect_rpc"),
			attribute.String("rpc.service", heraldv1connect.NotificationServiceName),
			attribute.String("rpc.method", "Publish"),
		)
	}
	res, err := p.next.Publish(ctx, req)
	if err != nil {
		span.SetStatus(codes.Error, connect.CodeOf(err).String())
		return nil, err
	}
	if span.IsRecording() {
		span.SetAttributes(telemetry.AttrNotificationID.String(res.Msg.GetId()))
	}
	return res, nil
}
