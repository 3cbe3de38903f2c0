/**
 * Generated from the gateway's OpenAPI document (web/openapi.json) by openapi-typescript:
 * do not edit. Regenerate with `npm run gen:api`; `npm test` fails when it is stale.
 */

export interface paths {
    "/v1/alert-states": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** The state of every rule of a tenant (summaries, no series). */
        get: operations["list_alert_states"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/alerts": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Lists a tenant's rules. */
        get: operations["list_alerts"];
        put?: never;
        /** Creates a rule. */
        post: operations["create_alert"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/alerts/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** One rule. */
        get: operations["get_alert"];
        /** Replaces a rule. */
        put: operations["put_alert"];
        post?: never;
        /** Deletes a rule. */
        delete: operations["delete_alert"];
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/alerts/{id}/events": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** A rule's transitions and delivery attempts, newest first. */
        get: operations["list_alert_events"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/alerts/{id}/state": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** The state of a rule per series, from the aggregators. */
        get: operations["get_alert_state"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/alerts/{id}/test": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Sends a test notification to the rule's webhook. */
        post: operations["test_alert"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/dashboards": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Lists a tenant's dashboards. */
        get: operations["list_dashboards"];
        put?: never;
        /** Creates a dashboard. */
        post: operations["create_dashboard"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/dashboards/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** One dashboard. */
        get: operations["get_dashboard"];
        /** Replaces a dashboard's name and description, and its widgets when given. */
        put: operations["put_dashboard"];
        post?: never;
        /** Deletes a dashboard. */
        delete: operations["delete_dashboard"];
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/dashboards/{id}/links": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Lists a dashboard's links (without their tokens). */
        get: operations["list_dashboard_links"];
        put?: never;
        /** Creates a link to a dashboard. */
        post: operations["create_dashboard_link"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/dashboards/{id}/links/{link_id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        post?: never;
        /** Revokes a link. */
        delete: operations["delete_dashboard_link"];
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/dashboards/{id}/stream": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Opens the stream. */
        get: operations["stream"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/dashboards/{id}/widgets": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Adds a widget. */
        post: operations["add_widget"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/dashboards/{id}/widgets/{widget_id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        /** Replaces a widget. */
        put: operations["put_widget"];
        post?: never;
        /** Removes a widget. */
        delete: operations["delete_widget"];
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/data-quality": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Accepted, rejected and late events per source and event type, with samples of the
         *     rejected items.
         */
        get: operations["get_data_quality"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/event-types": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * The event types seen of a tenant over the recent horizon (24 h by default), merged over
         *     every edge agent.
         */
        get: operations["list_event_types"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/keys": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Lists keys: a tenant's (the operator without `tenant_id`: every tenant's). */
        get: operations["list_keys"];
        put?: never;
        /** Creates a key. */
        post: operations["create_key"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/keys/{key_id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        post?: never;
        /** Revokes a key. */
        delete: operations["delete_key"];
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/metric-definitions": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Lists the definitions in force for a tenant. */
        get: operations["list_metric_definitions"];
        put?: never;
        /** Creates a definition. */
        post: operations["create_metric_definition"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/metric-definitions/{name}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** The definition in force for a tenant. */
        get: operations["get_metric_definition"];
        /** Creates or replaces the tenant's definition. */
        put: operations["put_metric_definition"];
        post?: never;
        /** Deletes the tenant's definition. */
        delete: operations["delete_metric_definition"];
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/metric-definitions/{name}/backfill": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** The newest backfill job of a metric and its progress. */
        get: operations["get_metric_backfill"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/metrics": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Lists the tenant's metrics. */
        get: operations["list_metrics"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/metrics/{name}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Windows of one metric. */
        get: operations["query_metric"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/metrics/{name}/capabilities": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** What a metric can answer. */
        get: operations["metric_capabilities"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/metrics/{name}/series": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Distinct series of a metric in a range. */
        get: operations["list_metric_series"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/session": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Who the request's credential is (key, session or link): `401` when none. */
        get: operations["get_session"];
        put?: never;
        /** Signs in: `204` with the session cookie. */
        post: operations["create_session"];
        /**
         * Signs out: clears the cookie (`204`). The token itself stays valid until it expires or its
         *     key is revoked: revoke the key to end every session of it at once.
         */
        delete: operations["delete_session"];
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/silences": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Lists a tenant's silences. */
        get: operations["list_silences"];
        put?: never;
        /** Creates a silence. */
        post: operations["create_silence"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/silences/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Reads a silence. */
        get: operations["get_silence"];
        put?: never;
        post?: never;
        /** Expires a silence: it ends now (a pending one never starts); it stays listed for a week. */
        delete: operations["expire_silence"];
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/status": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Per-partition watermark and lag, and whether data is stale. */
        get: operations["get_status"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/tenants/{tenant}/quotas": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** A tenant's limits and use. */
        get: operations["get_quotas"];
        /**
         * Sets a tenant's limits (the operator only): the body replaces the tenant's settings; a
         *     limit left out is the default.
         */
        put: operations["put_quotas"];
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
}
export type webhooks = Record<string, never>;
export interface components {
    schemas: {
        /** @description A transition or a delivery attempt of a rule. */
        AlertEventOut: {
            /** @description When (RFC 3339). */
            at: string;
            /**
             * Format: int32
             * @description Delivery: attempt number.
             */
            attempt?: number | null;
            /** @description The series' dimensions (null: the event lacked the dimension). */
            dimensions: {
                [key: string]: string | null;
            };
            /**
             * Format: int64
             * @description Delivery: duration of the request.
             */
            duration_ms?: number | null;
            /** @description Delivery: the error, or why it was skipped. */
            error?: string | null;
            /** @description The alert (rule and series). */
            fingerprint: string;
            /** @description State before. */
            from: components["schemas"]["AlertState"];
            /**
             * Format: int32
             * @description Delivery: the webhook's HTTP status.
             */
            http_status?: number | null;
            /** @description A transition or a delivery attempt. */
            kind: components["schemas"]["AlertLogKind"];
            outcome?: null | components["schemas"]["DeliveryOutcome"];
            /**
             * @description Never present: the receiver's answer is not shown (a webhook pointed at an internal
             *     service would otherwise read it back); `http_status` and `error` say how it went.
             */
            response?: string | null;
            /**
             * Format: double
             * @description The rule's threshold.
             */
            threshold: number;
            /** @description State after. */
            to: components["schemas"]["AlertState"];
            /** @description The transition's id (the webhook's `Idempotency-Key`). */
            transition_id: string;
            /**
             * Format: double
             * @description The stat's value in it.
             */
            value: number | null;
            /** @description Its end. */
            window_end: string;
            /** @description The window evaluated (RFC 3339). */
            window_start: string;
        };
        /** @description `{"alert_id", "events": [...]}`, newest first. */
        AlertEvents: {
            /** @description The rule. */
            alert_id: string;
            /** @description Its transitions and delivery attempts, newest first. */
            events: components["schemas"]["AlertEventOut"][];
        };
        /** @description Body of create and update calls. */
        AlertInput: {
            /** @description Ignored (answers carry it). */
            alert_id?: string | null;
            /** @description Annotations on notifications. */
            annotations?: {
                [key: string]: string;
            };
            /** @description Comparison of the stat against `threshold`. */
            condition: components["schemas"]["Condition"];
            /** @description Ignored. */
            created_at?: string | null;
            /** @description What the rule is for (at most 4000 characters). */
            description?: string;
            /** @description Dimension filter. */
            dimensions?: {
                [key: string]: string;
            };
            /** @description When windows are evaluated (default `final`). */
            evaluate_on?: components["schemas"]["EvaluateOn"];
            /**
             * Format: int32
             * @description Consecutive breaching windows before firing (1 to 1000).
             */
            for_windows?: number;
            /** @description Ignored. */
            id?: string | null;
            /** @description Labels on notifications. */
            labels?: {
                [key: string]: string;
            };
            /** @description Metric watched. */
            metric_name: string;
            /**
             * @description Name shown in the UI and in notifications (at most 200 characters; default: none, the
             *     id is shown).
             */
            name?: string;
            /**
             * @description Webhook URL (`http://` or `https://`; not to loopback, private or link-local
             *     addresses unless the operator allows them). Required on create; write-only (answers
             *     show it masked); an update without it keeps the stored one.
             */
            notify_channel?: string;
            /**
             * Format: int64
             * @description Expected revision (update only; like `If-Match`).
             */
            revision?: number | null;
            /** @description Statistic compared (default `count`). */
            stat?: components["schemas"]["Stat"];
            /** @description Tenant (required on create; on update may be the query parameter). */
            tenant_id?: string | null;
            /**
             * Format: double
             * @description Threshold.
             */
            threshold: number;
            /** @description Ignored. */
            updated_at?: string | null;
        };
        /** @description `{"alerts": [...]}`. */
        AlertList: {
            /** @description The rules, by creation time. */
            alerts: components["schemas"]["AlertOut"][];
        };
        /**
         * @description What a record of the alert log (`rtdash.alertlog.<tenant>.<rule>`) describes.
         * @enum {string}
         */
        AlertLogKind: "transition" | "delivery" | "test";
        /** @description A rule as answered: the stored rule's fields, `alert_id`, RFC 3339 times and `revision`. */
        AlertOut: {
            /** @description Id. */
            alert_id: string;
            /** @description Annotations. */
            annotations: {
                [key: string]: string;
            };
            /** @description Comparison of the stat against `threshold`. */
            condition: components["schemas"]["Condition"];
            /** @description Created (RFC 3339). */
            created_at: string;
            /** @description Description. */
            description: string;
            /** @description Dimension filter. */
            dimensions: {
                [key: string]: string;
            };
            /** @description When windows are evaluated. */
            evaluate_on: components["schemas"]["EvaluateOn"];
            /**
             * Format: int32
             * @description Windows before firing.
             */
            for_windows: number;
            /** @description Labels. */
            labels: {
                [key: string]: string;
            };
            /** @description Metric watched. */
            metric_name: string;
            /** @description Name (empty: none). */
            name: string;
            /** @description Webhook URL, masked: scheme, host and port only (`https://hooks.slack.com/***`). */
            notify_channel: string;
            /**
             * Format: int64
             * @description Store revision (also the `ETag`).
             */
            revision: number;
            /** @description Statistic compared. */
            stat: components["schemas"]["Stat"];
            /** @description Tenant. */
            tenant_id: string;
            /**
             * Format: double
             * @description Threshold.
             */
            threshold: number;
            /** @description Last change (RFC 3339). */
            updated_at: string;
        };
        /**
         * @description State of a rule for one series.
         * @enum {string}
         */
        AlertState: "ok" | "pending" | "firing" | "resolved";
        /** @description What `window=auto` picks for the range asked. */
        AutoChoice: {
            /** @description The stored resolution read. */
            source_window: string;
            /** @description The window. */
            window: string;
        };
        /** @description A backfill job and its progress, as stored and as answered by the API. */
        BackfillJob: {
            /** @description First window not recomputed: counted completely live by the edge agents. */
            boundary: components["schemas"]["i64"];
            /** @description Aggregator running it. */
            claimed_by?: string | null;
            /** @description When the definition was stored. */
            defined_at: components["schemas"]["i64"];
            /** @description Why it failed. */
            error?: string | null;
            /**
             * Format: int64
             * @description Archived events folded in so far.
             */
            events: number;
            finished_at?: null | components["schemas"]["i64"];
            /** @description First window start recomputed. */
            from: components["schemas"]["i64"];
            heartbeat_at?: null | components["schemas"]["i64"];
            /** @description Job id (unique per request). */
            id: string;
            /** @description Metric. */
            metric: string;
            phase?: null | components["schemas"]["BackfillPhase"];
            recent_complete_at?: null | components["schemas"]["i64"];
            /** @description When the job was requested. */
            requested_at: components["schemas"]["i64"];
            /**
             * Format: int64
             * @description Rows written so far (base and tier).
             */
            rows: number;
            /** @description State. */
            state: components["schemas"]["BackfillState"];
            /** @description Tenant. */
            tenant: string;
            tiers_complete_at?: null | components["schemas"]["i64"];
            /**
             * Format: int64
             * @description Base window length of the metric, ms.
             */
            window_ms: number;
            /**
             * Format: int64
             * @description Base windows of `[from, boundary)` recomputed so far.
             */
            windows_done: number;
            /**
             * Format: int64
             * @description Base windows of `[from, boundary)`.
             */
            windows_total: number;
        };
        /**
         * @description Which part of the work a running job is in.
         * @enum {string}
         */
        BackfillPhase: "past" | "recent" | "tiers";
        /**
         * @description Where a job is.
         * @enum {string}
         */
        BackfillState: "queued" | "running" | "done" | "failed";
        /**
         * @description Comparison of a stat against the threshold.
         * @enum {string}
         */
        Condition: "gt" | "lt" | "gte" | "lte" | "eq";
        /** @description A dashboard as stored (`dashboard.<tenant>.<id>`) and answered (plus `revision`). */
        Dashboard: {
            /** @description Created (RFC 3339). */
            created_at: string;
            /** @description Id. */
            dashboard_id: string;
            /** @description Free text. */
            description?: string | null;
            /** @description Name. */
            name: string;
            /** @description Tenant. */
            tenant_id: string;
            /** @description Last change (RFC 3339). */
            updated_at: string;
            /** @description Widgets, in display order. */
            widgets: components["schemas"]["Widget"][];
        };
        /** @description Body of `POST /v1/dashboards` and `PUT /v1/dashboards/{id}`. */
        DashboardInput: {
            /** @description Ignored. */
            created_at?: string | null;
            /** @description Ignored (answers carry it). */
            dashboard_id?: string | null;
            /** @description Free text. */
            description?: string | null;
            /** @description Name. */
            name: string;
            /**
             * Format: int64
             * @description Expected revision (update only; like `If-Match`).
             */
            revision?: number | null;
            /** @description Tenant (required on create). */
            tenant_id?: string | null;
            /** @description Ignored. */
            updated_at?: string | null;
            /** @description Widgets; on update, replaces them only when given. */
            widgets?: components["schemas"]["WidgetInput"][] | null;
        };
        /** @description `{"dashboards": [...]}`. */
        DashboardList: {
            /** @description Sorted by name. */
            dashboards: components["schemas"]["DashboardOut"][];
        };
        /** @description A dashboard with its store revision (answer shape). */
        DashboardOut: components["schemas"]["Dashboard"] & {
            /**
             * Format: int64
             * @description Store revision (also the `ETag`).
             */
            revision: number;
        };
        /** @description A tenant's data quality over a range. */
        DataQuality: {
            /**
             * @description Whether `beyond_horizon` counts every late record of the range (else the newest ones
             *     only: at least this many).
             */
            beyond_horizon_complete: boolean;
            /** @description Start of the range (RFC 3339). */
            from: string;
            /**
             * Format: int64
             * @description An event is late when it arrived more than this after its `occurred_at`.
             */
            late_after_ms: number;
            /** @description Per source and event type, by source then event type. */
            rows: components["schemas"]["QualityRow"][];
            /**
             * @description Whether the samples come from every dead letter of the range (else from the newest
             *     ones only).
             */
            samples_complete: boolean;
            /** @description Dead letters read for the samples. */
            samples_scanned: number;
            /** @description Tenant. */
            tenant_id: string;
            /** @description End of the range (RFC 3339, exclusive). */
            to: string;
            /** @description Whether a metric had more series than were read (some rows are missing). */
            truncated: boolean;
        };
        /** @description `{"definitions": [...]}`. */
        DefinitionList: {
            /** @description The definitions. */
            definitions: components["schemas"]["DefinitionOut"][];
        };
        /** @description A definition as answered. */
        DefinitionOut: components["schemas"]["MetricDefinition"] & {
            backfill?: null | components["schemas"]["BackfillJob"];
            /** @description Dimension sets kept (full set first, each sorted). */
            dimension_sets: string[][];
            /** @description Whether it can be changed through this API by the tenant. */
            read_only: boolean;
            /**
             * Format: int64
             * @description Store revision (absent for built-ins).
             */
            revision?: number | null;
            /** @description Origin. */
            scope: components["schemas"]["Scope"];
        };
        /**
         * @description How a delivery attempt ended.
         * @enum {string}
         */
        DeliveryOutcome: "delivered" | "retrying" | "failed" | "gave_up" | "skipped" | "silenced";
        /** @description The JSON body of an error. */
        ErrorBody: {
            /** @description The error. */
            error: components["schemas"]["ErrorDetail"];
        };
        /** @description Code and human-readable message. */
        ErrorDetail: {
            /**
             * @description Stable machine-readable code (`invalid_request`, `unauthorized`, `forbidden`,
             *     `not_found`, `conflict`, `payload_too_large`, `method_not_allowed`,
             *     `too_many_requests`, `quota_exceeded`, `too_many_streams`, `unavailable`, `timeout`,
             *     `internal`).
             */
            code: string;
            /** @description What went wrong, for people. */
            message: string;
        };
        /**
         * @description When a rule looks at a window.
         * @enum {string}
         */
        EvaluateOn: "final" | "provisional";
        /** @description One event type. */
        EventTypeInfo: {
            /** @description The event type. */
            event_type: string;
            /**
             * Format: int64
             * @description Events accepted.
             */
            events: number;
            /** @description First seen (RFC 3339). */
            first_seen: string;
            /** @description Last seen (RFC 3339). */
            last_seen: string;
            /** @description Properties, by name. */
            properties: components["schemas"]["PropertyInfo"][];
            /**
             * Format: int64
             * @description Property occurrences not kept (names beyond the per-type cap).
             */
            properties_dropped: number;
        };
        /** @description The event types of a tenant, as `GET /v1/event-types` serves them. */
        EventTypes: {
            /** @description Agents whose records were merged. */
            agents: number;
            /** @description Event types seen within the horizon, by name. */
            event_types: components["schemas"]["EventTypeInfo"][];
            /**
             * Format: int64
             * @description Events of event types not kept (beyond the per-tenant cap of an agent).
             */
            event_types_dropped: number;
            /**
             * Format: int64
             * @description Events whose properties were not kept (beyond an agent's total property cap).
             */
            properties_dropped: number;
            /** @description Tenant. */
            tenant_id: string;
        };
        /**
         * @description Overall freshness.
         * @enum {string}
         */
        FreshnessState: "ok" | "behind" | "stale" | "unknown" | "disconnected";
        /** @description A new key: the only answer that carries the secret. */
        KeyCreated: {
            /** @description Created (RFC 3339). */
            created_at: string;
            /** @description The key (`rtd_<key_id>_<secret>`): shown this once; store it now. */
            key: string;
            /** @description Public id (also in the key). */
            key_id: string;
            /** @description Name. */
            name: string;
            /** @description Role. */
            role: components["schemas"]["Role"];
            /** @description Tenant. */
            tenant_id: string;
        };
        /** @description Body of `POST /v1/keys`. */
        KeyInput: {
            /** @description A name for people (1 to 200 characters): who or what uses the key. */
            name: string;
            /** @description What the key may do. */
            role: components["schemas"]["Role"];
            /** @description Tenant (the caller's own for an admin key; required for the operator). */
            tenant_id?: string | null;
        };
        /** @description `{"keys": [...]}`. */
        KeyList: {
            /** @description By creation time. */
            keys: components["schemas"]["KeyOut"][];
        };
        /** @description A key as listed (never its secret). */
        KeyOut: {
            /** @description Created (RFC 3339). */
            created_at: string;
            /** @description `operator` or the id of the key that created it. */
            created_by: string;
            /** @description Public id. */
            key_id: string;
            /**
             * @description Last use seen by a gateway or agent (RFC 3339; recorded at most once a minute per
             *     service), absent when never used.
             */
            last_used_at?: string | null;
            /** @description Name. */
            name: string;
            /** @description Role. */
            role: components["schemas"]["Role"];
            /** @description Tenant. */
            tenant_id: string;
        };
        /** @description Events per observed kind. */
        KindCounts: {
            /**
             * Format: int64
             * @description As a JSON boolean.
             */
            bool: number;
            /**
             * Format: int64
             * @description As a JSON number.
             */
            number: number;
            /**
             * Format: int64
             * @description As a JSON string.
             */
            string: number;
        };
        /**
         * @description A tenant's limits: `[quotas]` of the gateway (the limits of a tenant the operator
         *     has not set otherwise; a key left out keeps its default), a tenant's limits in
         *     force, or its use against them (counts now, the largest dashboard's widgets, the
         *     highest `max_series_per_window` of its definitions).
         */
        Limits: {
            /**
             * Format: int64
             * @description Alert rules.
             * @default 200
             */
            alert_rules: number;
            /**
             * Format: int64
             * @description Bytes in the config bucket.
             * @default 16777216
             */
            config_bytes: number;
            /**
             * Format: int64
             * @description Dashboards.
             * @default 100
             */
            dashboards: number;
            /**
             * Format: int64
             * @description The ceiling of a definition's `max_series_per_window` (at least 1).
             * @default 100000
             */
            max_series_per_window: number;
            /**
             * Format: int64
             * @description The tenant's own metric definitions.
             * @default 100
             */
            metric_definitions: number;
            /**
             * Format: int64
             * @description Live streams open at once (per gateway).
             * @default 2000
             */
            open_streams: number;
            /**
             * Format: int64
             * @description Silences (not yet purged).
             * @default 1000
             */
            silences: number;
            /**
             * Format: int64
             * @description Widgets on one dashboard.
             * @default 50
             */
            widgets_per_dashboard: number;
        };
        /** @description Body of `POST /v1/dashboards/{id}/links`. */
        LinkInput: {
            /** @description Filters merged into every widget's query (they override the widget's own). */
            dimensions?: {
                [key: string]: string;
            };
            /** @description The link stops working at this time (RFC 3339); never, when absent. */
            expires_at?: string | null;
            /** @description Tenant (or as the query parameter). */
            tenant_id?: string | null;
        };
        /** @description `{"links": [...]}`. */
        LinkList: {
            /** @description By creation time. */
            links: components["schemas"]["LinkOut"][];
        };
        /** @description A link as answered (the token only when created). */
        LinkOut: {
            /** @description Created (RFC 3339). */
            created_at: string;
            /** @description `operator` or the creating key's id. */
            created_by: string;
            /** @description The dashboard. */
            dashboard_id: string;
            /** @description Fixed filters. */
            dimensions: {
                [key: string]: string;
            };
            /** @description Expiry (RFC 3339), if any. */
            expires_at?: string | null;
            /** @description Public id. */
            link_id: string;
            /** @description Tenant. */
            tenant_id: string;
            /** @description The token (`rtl_<link_id>_<secret>`): in the creating answer only. */
            token?: string | null;
            /**
             * @description The page showing the dashboard (`/embed/<token>`, relative to the gateway): in the
             *     creating answer only.
             */
            url?: string | null;
        };
        /** @description What a metric can answer. */
        MetricCapabilities: {
            auto?: null | components["schemas"]["AutoChoice"];
            /**
             * Format: int64
             * @description `window=auto` keeps answers at or under this many windows when it can.
             */
            auto_max_windows: number;
            /** @description Default `limit` of a grouped answer. */
            default_limit: number;
            /**
             * @description Dimension sets kept as stored series (a filter on exactly one of them reads one
             *     series per window; others merge).
             */
            dimension_sets: string[][];
            /**
             * @description Dimensions usable in `dimensions` filters and in `group_by` (any of them, any
             *     combination).
             */
            dimensions: string[];
            /** @description Largest `limit`. */
            max_limit: number;
            /**
             * Format: int64
             * @description Most windows in one answer.
             */
            max_windows: number;
            /** @description Metric. */
            metric_name: string;
            /** @description The stored resolutions, coarsest first. */
            sources: components["schemas"]["SourceOut"][];
            /** @description Stats it has (each for any window, filter and grouping below). */
            stats: components["schemas"]["Stat"][];
            /** @description The metric's own window. */
            window: string;
            /** @description Windows offered (multiples of the metric's window), finest first. */
            windows: components["schemas"]["WindowOption"][];
        };
        /** @description A metric definition as users write it (TOML, JSON, or through the gateway's API). */
        MetricDefinition: {
            /** @description Free text shown in the dashboard. */
            description?: string | null;
            /** @description Dimensions to group by. */
            dimensions?: string[];
            /** @description Event type that feeds the metric, or `*` for every type. */
            event_type: string;
            /** @description Numeric property aggregated into sum, min, max, avg and percentiles. */
            field?: string | null;
            /**
             * Format: int32
             * @description Cap on distinct series per tenant and window; further series fold into one overflow
             *     series whose dimension values are `__overflow__`.
             */
            max_series_per_window?: number;
            /** @description Metric name, `[A-Za-z0-9_-]`, at most 64 bytes; unique per tenant. */
            name: string;
            /** @description Dimension subsets also kept; defaults to the full set and the empty set. */
            rollups?: string[][] | null;
            /**
             * @description Tenant the metric belongs to; absent means every tenant. A tenant's own definition
             *     overrides an every-tenant definition of the same name.
             */
            tenant_id?: string | null;
            /** @description Property whose distinct values are counted (HyperLogLog). */
            unique?: string | null;
            /**
             * Format: int32
             * @description Tumbling window size in seconds (divides a day).
             */
            window_secs?: number;
        };
        /** @description A metric of the tenant. */
        MetricInfo: {
            /** @description The full definition. */
            definition: components["schemas"]["MetricDefinition"];
            /** @description Dimension sets kept. */
            dimension_sets: string[][];
            /** @description Dimensions. */
            dimensions: string[];
            /** @description Name. */
            name: string;
            /** @description Origin. */
            scope: components["schemas"]["Scope"];
            /** @description Stats the metric has. */
            stats: components["schemas"]["Stat"][];
            /**
             * Format: int32
             * @description Window, seconds.
             */
            window_secs: number;
        };
        /** @description `{"metrics": [...]}`. */
        MetricList: {
            /** @description By name. */
            metrics: components["schemas"]["MetricInfo"][];
        };
        /** @description The answer of a metric query. */
        MetricWindows: {
            /** @description Filter applied. */
            dimensions: {
                [key: string]: string;
            };
            /** @description Grouped by these dimensions (absent when not grouped). */
            group_by?: string[];
            /** @description Metric. */
            metric_name: string;
            /** @description Grouped answers: the top `limit` series by the stat over the range, then `other`. */
            series?: components["schemas"]["SeriesOut"][] | null;
            /** @description The stored resolution read: the metric's window or a rollup tier's. */
            source_window: string;
            /** @description Stat served. */
            stat: components["schemas"]["Stat"];
            /** @description Window served (the one `window=auto` chose, when asked so). */
            window: string;
            /** @description Whether `window=auto` chose the window. */
            window_auto: boolean;
            /** @description Windows with data, by start (empty for a grouped answer: see `series`). */
            windows: components["schemas"]["WindowOut"][];
        };
        /** @description One partition's latest report. */
        PartitionView: {
            /**
             * Format: int64
             * @description How long ago this gateway received the report, ms.
             */
            age_ms: number;
            /**
             * Format: int64
             * @description Unprocessed messages.
             */
            lag_messages: number;
            /** @description Owning aggregator. */
            owner: string;
            /**
             * Format: int32
             * @description Partition.
             */
            partition: number;
            /** @description When the aggregator reported (RFC 3339). */
            reported_at: string;
            /** @description Whether this partition is behind or silent. */
            stale: boolean;
            /** @description Watermark (RFC 3339), if known. */
            watermark?: string | null;
        };
        /** @description One property of an event type. */
        PropertyInfo: {
            /**
             * Format: int64
             * @description Approximate number of distinct values (HyperLogLog, standard error about 3 %).
             */
            distinct_estimate: number;
            /**
             * @description Up to five distinct example values (canonical text, cut to the agents' example
             *     length).
             */
            examples: string[];
            /** @description Events per kind. */
            kind_counts: components["schemas"]["KindCounts"];
            /** @description Kinds observed (`number`, `string`, `bool`), most frequent first. */
            kinds: string[];
            /** @description The property name. */
            name: string;
        };
        /** @description One source and event type. */
        QualityRow: {
            /**
             * Format: int64
             * @description Accepted events.
             */
            accepted: number;
            /**
             * Format: int64
             * @description Events that reached the aggregators after their window's correction horizon (kept on
             *     the late stream, not in the windows).
             */
            beyond_horizon: number;
            /** @description Event type (`_unknown` for rejected items that named none). */
            event_type: string;
            /**
             * Format: int64
             * @description Accepted events that arrived more than `late_after_ms` after their `occurred_at`.
             */
            late: number;
            /**
             * Format: int64
             * @description Rejected items (the sum of `rejections`' counts).
             */
            rejected: number;
            /** @description Per reason, by reason. */
            rejections: components["schemas"]["RejectionReason"][];
            /** @description Source (`_unknown` for rejected items that named none). */
            source: string;
        };
        /**
         * @description What the operator set for one tenant (`quota.<tenant>` in the keys bucket, and the
         *     body of `PUT /v1/tenants/{tenant}/quotas`): a limit left out (or `null`) is the
         *     default of `[quotas]`.
         */
        QuotaSettings: {
            /**
             * Format: int64
             * @description Alert rules.
             */
            alert_rules?: number | null;
            /**
             * Format: int64
             * @description Bytes in the config bucket.
             */
            config_bytes?: number | null;
            /**
             * Format: int64
             * @description Dashboards.
             */
            dashboards?: number | null;
            /**
             * Format: int64
             * @description Events per second the tenant may send through each edge agent (enforced by the
             *     agents; 0: no limit; unset: the agent's `ingest.tenant_events_per_second`).
             */
            events_per_second?: number | null;
            /**
             * Format: int64
             * @description The ceiling of a definition's `max_series_per_window` (at least 1).
             */
            max_series_per_window?: number | null;
            /**
             * Format: int64
             * @description The tenant's own metric definitions.
             */
            metric_definitions?: number | null;
            /**
             * Format: int64
             * @description Live streams open at once (per gateway).
             */
            open_streams?: number | null;
            /**
             * Format: int64
             * @description Silences (not yet purged).
             */
            silences?: number | null;
            /**
             * Format: int64
             * @description Widgets on one dashboard.
             */
            widgets_per_dashboard?: number | null;
        };
        /** @description A tenant's quotas. */
        QuotasOut: {
            /** @description The limits in force: the operator's settings over the gateway's `[quotas]` defaults. */
            limits: components["schemas"]["Limits"];
            /** @description What the operator set (the rest are defaults). */
            settings: components["schemas"]["QuotaSettings"];
            /** @description Tenant. */
            tenant_id: string;
            /**
             * @description Use now: counts, the most widgets on one dashboard, streams open on this gateway, the
             *     highest `max_series_per_window` of the tenant's definitions.
             */
            used: components["schemas"]["Limits"];
        };
        /** @description A rejected item as it was received. */
        RejectSample: {
            /** @description What was wrong, naming the field. */
            detail: string;
            /** @description The raw item as text (lossy when it was not UTF-8), cut to 4 KiB. */
            raw: string;
            /** @description Reason code. */
            reason: string;
            /** @description When it was received (RFC 3339). */
            received_at: string;
            /** @description Which component rejected it. */
            rejected_by: string;
            /** @description Whether `raw` was cut (by the agent or here). */
            truncated: boolean;
        };
        /** @description Rejections of one reason. */
        RejectionReason: {
            /**
             * Format: int64
             * @description Rejected items counted by the edge agents.
             */
            count: number;
            /** @description Reason code (`missing_field`, `invalid_timestamp`...). */
            reason: string;
            /** @description The newest rejected items of this reason, newest first (at most 5). */
            samples: components["schemas"]["RejectSample"][];
        };
        /**
         * @description A key's role.
         * @enum {string}
         */
        Role: "ingest" | "viewer" | "editor" | "admin";
        /** @description `GET /v1/alerts/{id}/state`. */
        RuleState: {
            /** @description The rule. */
            alert_id: string;
            /** @description Series firing. */
            firing: number;
            /** @description Series pending. */
            pending: number;
            /** @description The series, worst first (at most 1000). */
            series: components["schemas"]["SeriesState"][];
            /**
             * @description The worst state of its series (`firing` > `pending` > `resolved` > `ok`); `ok` when it
             *     watches no series yet.
             */
            state: components["schemas"]["AlertState"];
            /** @description Series with a state. */
            total_series: number;
        };
        /** @description `GET /v1/alert-states`. */
        RuleStates: {
            /** @description Every rule of the tenant with its summary (series left out). */
            alerts: components["schemas"]["RuleState"][];
        };
        /**
         * @description Where a definition comes from.
         * @enum {string}
         */
        Scope: "tenant" | "global" | "builtin";
        /** @description Distinct dimension values of a metric. */
        SeriesList: {
            /** @description Per dimension, the distinct values seen. */
            dimensions: {
                [key: string]: string[];
            };
            /** @description Metric. */
            metric_name: string;
            /** @description The series (dimension name -> value, null where the events lacked it). */
            series: {
                [key: string]: string | null;
            }[];
            /** @description Whether `limit` cut the list. */
            truncated: boolean;
        };
        /** @description One series of a grouped answer. */
        SeriesOut: {
            /**
             * @description The grouped dimensions' values (null: events without that dimension); `{}` for
             *     `other`.
             */
            dimensions: {
                [key: string]: string | null;
            };
            /** @description Whether this is the merge of every group beyond `limit`. */
            other: boolean;
            /**
             * Format: double
             * @description The stat over the whole range (what the series are ordered by).
             */
            value: number | null;
            /** @description Its windows, by start. */
            windows: components["schemas"]["WindowOut"][];
        };
        /** @description One series of a rule. */
        SeriesState: {
            /** @description When the last transition was evaluated, RFC 3339. */
            changed_at?: string | null;
            /** @description The series' dimensions (`null`: the event had no value). */
            dimensions: {
                [key: string]: string | null;
            };
            /** @description Start of the newest window evaluated, RFC 3339. */
            last_window_start?: string | null;
            /** @description The silence muting its notifications now, if any. */
            silenced_by?: string | null;
            /** @description When the breaching streak started (pending, firing, resolved), RFC 3339. */
            since?: string | null;
            /** @description Its state. */
            state: components["schemas"]["AlertState"];
            /**
             * Format: double
             * @description The stat's value at the last transition.
             */
            value?: number | null;
        };
        /** @description Who the credential of the request is. */
        SessionOut: {
            /** @description The one dashboard (links). */
            dashboard_id?: string | null;
            /** @description Fixed filters (links). */
            dimensions?: {
                [key: string]: string;
            } | null;
            /** @description Key id (keys). */
            key_id?: string | null;
            /** @description `operator`, `key` or `link`. */
            kind: string;
            /** @description Key name (keys). */
            name?: string | null;
            role?: null | components["schemas"]["Role"];
            /** @description Tenant (absent for the operator). */
            tenant_id?: string | null;
        };
        /** @description Body of `POST /v1/session`. */
        SignIn: {
            /** @description A key of role `viewer` or higher, or the operator key. */
            key: string;
        };
        /** @description Body of `POST /v1/silences`. */
        SilenceInput: {
            /** @description The rule muted (must exist); absent: every rule of the tenant. */
            alert_id?: string | null;
            /** @description Why. */
            comment?: string;
            /** @description Who (default: the name of the key, or `operator`). */
            created_by?: string | null;
            /**
             * Format: int64
             * @description Length from `starts_at`, in seconds. Give this or `ends_at`.
             */
            duration_secs?: number | null;
            /** @description End (RFC 3339). Give this or `duration_secs`. */
            ends_at?: string | null;
            /** @description Series muted: dimension -> value (`*`: any value); empty: every series. */
            matchers?: {
                [key: string]: string;
            };
            /** @description Start (RFC 3339; default now). */
            starts_at?: string | null;
            /** @description Tenant. */
            tenant_id?: string | null;
        };
        /** @description `{"silences": [...]}`. */
        SilenceList: {
            /** @description In force first, then pending, then expired; newest end first within each. */
            silences: components["schemas"]["SilenceOut"][];
        };
        /** @description A silence as answered. */
        SilenceOut: {
            /** @description The rule muted (absent: every rule). */
            alert_id?: string | null;
            /** @description Why. */
            comment: string;
            /** @description Created (RFC 3339). */
            created_at: string;
            /** @description Who. */
            created_by: string;
            /** @description End (RFC 3339). */
            ends_at: string;
            /** @description Series muted. */
            matchers: {
                [key: string]: string;
            };
            /**
             * Format: int64
             * @description Store revision.
             */
            revision: number;
            /** @description Id. */
            silence_id: string;
            /** @description Start (RFC 3339). */
            starts_at: string;
            /** @description `pending`, `active` or `expired`, now. */
            status: components["schemas"]["SilenceStatus"];
            /** @description Tenant. */
            tenant_id: string;
        };
        /**
         * @description Where a silence stands at a given time.
         * @enum {string}
         */
        SilenceStatus: "pending" | "active" | "expired";
        /** @description A stored resolution of the metric. */
        SourceOut: {
            /**
             * Format: int64
             * @description Days its table keeps (null: forever).
             */
            retention_days: number | null;
            /** @description Whether it is a rollup tier (else the metric's own windows). */
            tier: boolean;
            /** @description Its window (`1m`, `1h`...). */
            window: string;
        };
        /**
         * @description One served statistic.
         * @enum {string}
         */
        Stat: "count" | "sum" | "min" | "max" | "avg" | "p50" | "p90" | "p95" | "p99" | "unique";
        /** @description The freshness summary (`GET /v1/status`, SSE `status` events). */
        StatusView: {
            /** @description When this summary was computed (RFC 3339). */
            checked_at: string;
            /**
             * Format: int64
             * @description Largest partition lag.
             */
            max_lag_messages: number;
            /** @description Oldest partition watermark (RFC 3339). */
            min_watermark?: string | null;
            /** @description Per partition (only in `GET /v1/status`). */
            partitions?: components["schemas"]["PartitionView"][] | null;
            /** @description Partitions with a report. */
            partitions_reporting: number;
            /** @description `state` is `behind` or `stale`. */
            stale: boolean;
            /** @description Overall state. */
            state: components["schemas"]["FreshnessState"];
            /**
             * Format: int64
             * @description How far the oldest watermark is behind now, ms.
             */
            watermark_delay_ms?: number | null;
        };
        /** @description How a test notification went. */
        TestOutcome: {
            /** @description The rule. */
            alert_id: string;
            /** @description When it was sent (RFC 3339). */
            at: string;
            /**
             * Format: int64
             * @description Duration of the request.
             */
            duration_ms: number;
            /** @description The error, without the receiver's body or the webhook's path. */
            error: string | null;
            /**
             * @description Why there was no answer: `refused` (the destination policy), `timeout`, `connect`,
             *     `request`, `bad_url`; `http_status` for a non-2xx answer; null when delivered.
             */
            error_class: string | null;
            /**
             * Format: int32
             * @description The webhook's HTTP status, when it answered.
             */
            http_status: number | null;
            /** @description `delivered` (a 2xx answer) or `failed`. */
            outcome: components["schemas"]["DeliveryOutcome"];
            /** @description Whether the attempt was written to the rule's history. */
            recorded: boolean;
            /** @description The test's id (the request's `Idempotency-Key`). */
            test_id: string;
        };
        /**
         * @description How a widget draws.
         * @enum {string}
         */
        VizType: "line_chart" | "area_chart" | "bar_chart" | "counter" | "gauge" | "table";
        /**
         * @description A widget: a query definition resolved at read time. Answers always carry every field but
         *     `title` and `window` (the serde defaults read documents stored before a field existed).
         */
        Widget: {
            /** @description Dimension filter. */
            dimensions: {
                [key: string]: string;
            };
            /**
             * @description One series per value of these dimensions (a multi-series chart, a top-N bar chart
             *     or table); absent: one series.
             */
            group_by?: string[];
            /** @description Series shown besides `other` when grouped (default 10, at most 100). */
            limit?: number | null;
            /** @description Metric shown. */
            metric_name: string;
            /** @description Statistic shown. */
            stat: components["schemas"]["Stat"];
            /**
             * @description Range shown: `last_<n><s|m|h|d>`.
             * @example last_1h
             */
            time_window: string;
            /** @description Display title. */
            title?: string | null;
            /** @description How it draws. */
            viz_type: components["schemas"]["VizType"];
            /** @description Id (assigned by the gateway). */
            widget_id: string;
            /**
             * @description Aggregation window: a multiple of the metric's window (`1m`, `5m`, `1h`...) or
             *     `auto` (the finest keeping the range at or under about 500 windows); `auto` when
             *     absent.
             * @example auto
             */
            window?: string | null;
        };
        /** @description A widget as sent in create and update calls (the tenant may be named here). */
        WidgetInput: {
            /** @description Dimension filter. */
            dimensions?: {
                [key: string]: string;
            };
            /** @description One series per value of these dimensions (default: none, one series). */
            group_by?: string[];
            /** @description Series shown besides `other` when grouped (default 10, at most 100). */
            limit?: number | null;
            /** @description Metric shown. */
            metric_name: string;
            /** @description Statistic shown (default `count`). */
            stat?: components["schemas"]["Stat"];
            /** @description Tenant (or as the `tenant_id` query parameter). */
            tenant_id?: string | null;
            /**
             * @description Range shown: `last_<n><s|m|h|d>` (default `last_1h`).
             * @example last_1h
             */
            time_window?: string;
            /** @description Display title. */
            title?: string | null;
            /** @description How it draws. */
            viz_type?: components["schemas"]["VizType"];
            /** @description Ignored on create; must match the path on update when given. */
            widget_id?: string | null;
            /**
             * @description Aggregation window: a multiple of the metric's window (`1m`, `5m`, `1h`...) or
             *     `auto` (default).
             * @example auto
             */
            window?: string | null;
        };
        /** @description A window the metric can be served at. */
        WindowOption: {
            /** @description With `time_window`: whether a widget of that range can use it. */
            allowed?: boolean | null;
            /** @description With `time_window`, when not allowed: why (the planner's message). */
            reason?: string | null;
            /**
             * Format: int64
             * @description How far back it can be served, in days (the longest retention of the resolutions
             *     that divide it; null: forever).
             */
            retention_days: number | null;
            /** @description The window. */
            window: string;
        };
        /** @description One served window. */
        WindowOut: {
            /** @description Closed. */
            final: boolean;
            /**
             * Format: int64
             * @description Late events merged.
             */
            late_count: number;
            /**
             * Format: int32
             * @description Highest revision.
             */
            revision: number;
            /** @description Latest version (RFC 3339). */
            updated_at: string;
            /**
             * Format: double
             * @description The stat's value (null when the window has none for it).
             */
            value: number | null;
            /** @description End, exclusive (RFC 3339). */
            window_end: string;
            /** @description Start (RFC 3339). */
            window_start: string;
        };
        /** Format: int64 */
        i64: number;
    };
    responses: never;
    parameters: never;
    requestBodies: never;
    headers: never;
    pathItems: never;
}
export type $defs = Record<string, never>;
export interface operations {
    list_alert_states: {
        parameters: {
            query?: {
                /**
                 * @description Tenant: the key's own when absent (a different one is `403`); the operator must name
                 *     it.
                 */
                tenant_id?: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["RuleStates"];
                };
            };
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    list_alerts: {
        parameters: {
            query?: {
                /**
                 * @description Tenant: the key's own when absent (a different one is `403`); the operator must name
                 *     it.
                 */
                tenant_id?: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["AlertList"];
                };
            };
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    create_alert: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["AlertInput"];
            };
        };
        responses: {
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["AlertOut"];
                };
            };
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    get_alert: {
        parameters: {
            query?: {
                /**
                 * @description Tenant: the key's own when absent (a different one is `403`); the operator must name
                 *     it.
                 */
                tenant_id?: string;
            };
            header?: never;
            path: {
                /** @description Alert id */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["AlertOut"];
                };
            };
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    put_alert: {
        parameters: {
            query?: {
                /**
                 * @description Tenant: the key's own when absent (a different one is `403`); the operator must name
                 *     it.
                 */
                tenant_id?: string;
            };
            header?: {
                /** @description Expected revision */
                "If-Match"?: string | null;
            };
            path: {
                /** @description Alert id */
                id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["AlertInput"];
            };
        };
        responses: {
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["AlertOut"];
                };
            };
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    delete_alert: {
        parameters: {
            query?: {
                /**
                 * @description Tenant: the key's own when absent (a different one is `403`); the operator must name
                 *     it.
                 */
                tenant_id?: string;
            };
            header?: {
                /** @description Expected revision */
                "If-Match"?: string | null;
            };
            path: {
                /** @description Alert id */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            204: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    list_alert_events: {
        parameters: {
            query?: {
                /** @description Tenant (`[A-Za-z0-9_-]`, 1 to 128). */
                tenant_id?: string;
                /** @description Most records answered, newest first: 1 to 1000, default 100. */
                limit?: number;
            };
            header?: never;
            path: {
                /** @description Alert id */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["AlertEvents"];
                };
            };
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    get_alert_state: {
        parameters: {
            query?: {
                /**
                 * @description Tenant: the key's own when absent (a different one is `403`); the operator must name
                 *     it.
                 */
                tenant_id?: string;
            };
            header?: never;
            path: {
                /** @description Alert id */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["RuleState"];
                };
            };
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    test_alert: {
        parameters: {
            query?: {
                /**
                 * @description Tenant: the key's own when absent (a different one is `403`); the operator must name
                 *     it.
                 */
                tenant_id?: string;
            };
            header?: never;
            path: {
                /** @description Alert id */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Sent (or refused by the destination policy): `outcome` says how it went */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["TestOutcome"];
                };
            };
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    list_dashboards: {
        parameters: {
            query?: {
                /**
                 * @description Tenant: the key's own when absent (a different one is `403`); the operator must name
                 *     it.
                 */
                tenant_id?: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["DashboardList"];
                };
            };
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    create_dashboard: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["DashboardInput"];
            };
        };
        responses: {
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["DashboardOut"];
                };
            };
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    get_dashboard: {
        parameters: {
            query?: {
                /**
                 * @description Tenant: the key's own when absent (a different one is `403`); the operator must name
                 *     it.
                 */
                tenant_id?: string;
            };
            header?: never;
            path: {
                /** @description Dashboard id */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["DashboardOut"];
                };
            };
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    put_dashboard: {
        parameters: {
            query?: {
                /**
                 * @description Tenant: the key's own when absent (a different one is `403`); the operator must name
                 *     it.
                 */
                tenant_id?: string;
            };
            header?: {
                /** @description Expected revision */
                "If-Match"?: string | null;
            };
            path: {
                /** @description Dashboard id */
                id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["DashboardInput"];
            };
        };
        responses: {
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["DashboardOut"];
                };
            };
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    delete_dashboard: {
        parameters: {
            query?: {
                /**
                 * @description Tenant: the key's own when absent (a different one is `403`); the operator must name
                 *     it.
                 */
                tenant_id?: string;
            };
            header?: {
                /** @description Expected revision */
                "If-Match"?: string | null;
            };
            path: {
                /** @description Dashboard id */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            204: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    list_dashboard_links: {
        parameters: {
            query?: {
                /**
                 * @description Tenant: the key's own when absent (a different one is `403`); the operator must name
                 *     it.
                 */
                tenant_id?: string;
            };
            header?: never;
            path: {
                /** @description Dashboard id */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["LinkList"];
                };
            };
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    create_dashboard_link: {
        parameters: {
            query?: {
                /**
                 * @description Tenant: the key's own when absent (a different one is `403`); the operator must name
                 *     it.
                 */
                tenant_id?: string;
            };
            header?: never;
            path: {
                /** @description Dashboard id */
                id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["LinkInput"];
            };
        };
        responses: {
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["LinkOut"];
                };
            };
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    delete_dashboard_link: {
        parameters: {
            query?: {
                /**
                 * @description Tenant: the key's own when absent (a different one is `403`); the operator must name
                 *     it.
                 */
                tenant_id?: string;
            };
            header?: never;
            path: {
                /** @description Dashboard id */
                id: string;
                /** @description Link id */
                link_id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            204: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    stream: {
        parameters: {
            query?: {
                /**
                 * @description Tenant: the key's own when absent (a different one is `403`); the operator must name
                 *     it.
                 */
                tenant_id?: string;
            };
            header?: {
                /** @description Resume after this event */
                "Last-Event-ID"?: string | null;
            };
            path: {
                /** @description Dashboard id */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description text/event-stream of snapshot, update, status and reload events */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "text/event-stream": string;
                };
            };
            /** @description No such dashboard */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description The tenant's `open_streams` quota is reached (`quota_exceeded`), or this client address has `live.max_streams_per_client` streams open (`too_many_streams`) */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description Too many streams or NATS unavailable */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    add_widget: {
        parameters: {
            query?: {
                /**
                 * @description Tenant: the key's own when absent (a different one is `403`); the operator must name
                 *     it.
                 */
                tenant_id?: string;
            };
            header?: never;
            path: {
                /** @description Dashboard id */
                id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["WidgetInput"];
            };
        };
        responses: {
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Widget"];
                };
            };
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    put_widget: {
        parameters: {
            query?: {
                /**
                 * @description Tenant: the key's own when absent (a different one is `403`); the operator must name
                 *     it.
                 */
                tenant_id?: string;
            };
            header?: never;
            path: {
                /** @description Dashboard id */
                id: string;
                /** @description Widget id */
                widget_id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["WidgetInput"];
            };
        };
        responses: {
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Widget"];
                };
            };
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    delete_widget: {
        parameters: {
            query?: {
                /**
                 * @description Tenant: the key's own when absent (a different one is `403`); the operator must name
                 *     it.
                 */
                tenant_id?: string;
            };
            header?: never;
            path: {
                /** @description Dashboard id */
                id: string;
                /** @description Widget id */
                widget_id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            204: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    get_data_quality: {
        parameters: {
            query?: {
                /**
                 * @description Tenant: the key's own when absent (a different one is `403`); the operator must name
                 *     it.
                 */
                tenant_id?: string;
                /** @description RFC 3339, inclusive (default: `to` - 1 h). */
                from?: string;
                /** @description RFC 3339, exclusive (default: now). At most 7 days after `from`. */
                to?: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["DataQuality"];
                };
            };
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    list_event_types: {
        parameters: {
            query?: {
                /**
                 * @description Tenant: the key's own when absent (a different one is `403`); the operator must name
                 *     it.
                 */
                tenant_id?: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["EventTypes"];
                };
            };
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    list_keys: {
        parameters: {
            query?: {
                /**
                 * @description Tenant: the key's own when absent (a different one is `403`); the operator must name
                 *     it.
                 */
                tenant_id?: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["KeyList"];
                };
            };
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    create_key: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["KeyInput"];
            };
        };
        responses: {
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["KeyCreated"];
                };
            };
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    delete_key: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Key id */
                key_id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            204: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    list_metric_definitions: {
        parameters: {
            query?: {
                /**
                 * @description Tenant: the key's own when absent (a different one is `403`); the operator must name
                 *     it.
                 */
                tenant_id?: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["DefinitionList"];
                };
            };
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    create_metric_definition: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** @description The definition, with `tenant_id`. May also carry `revision` (ignored on create), `backfill` (`{"hours": N}`: also compute the metric over the last N hours of the raw-event archive; the answer's `backfill` is the job) and the answer-only fields (`scope`, `read_only`, `dimension_sets`, ignored), so an answer can be sent back. */
        requestBody: {
            content: {
                "application/json": components["schemas"]["MetricDefinition"];
            };
        };
        responses: {
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["DefinitionOut"];
                };
            };
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    get_metric_definition: {
        parameters: {
            query?: {
                /**
                 * @description Tenant: the key's own when absent (a different one is `403`); the operator must name
                 *     it.
                 */
                tenant_id?: string;
            };
            header?: never;
            path: {
                /** @description Metric name */
                name: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["DefinitionOut"];
                };
            };
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    put_metric_definition: {
        parameters: {
            query?: {
                /**
                 * @description Tenant: the key's own when absent (a different one is `403`); the operator must name
                 *     it.
                 */
                tenant_id?: string;
            };
            header?: never;
            path: {
                /** @description Metric name */
                name: string;
            };
            cookie?: never;
        };
        /** @description The definition; `tenant_id` may instead be the query parameter. May also carry `revision` (the expected one, like `If-Match`), `backfill` (`{"hours": N}`, as on create) and the answer-only fields (`scope`, `read_only`, `dimension_sets`, ignored). */
        requestBody: {
            content: {
                "application/json": components["schemas"]["MetricDefinition"];
            };
        };
        responses: {
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["DefinitionOut"];
                };
            };
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["DefinitionOut"];
                };
            };
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    delete_metric_definition: {
        parameters: {
            query?: {
                /**
                 * @description Tenant: the key's own when absent (a different one is `403`); the operator must name
                 *     it.
                 */
                tenant_id?: string;
            };
            header?: never;
            path: {
                /** @description Metric name */
                name: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            204: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    get_metric_backfill: {
        parameters: {
            query?: {
                /**
                 * @description Tenant: the key's own when absent (a different one is `403`); the operator must name
                 *     it.
                 */
                tenant_id?: string;
            };
            header?: never;
            path: {
                /** @description Metric name */
                name: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["BackfillJob"];
                };
            };
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    list_metrics: {
        parameters: {
            query?: {
                /**
                 * @description Tenant: the key's own when absent (a different one is `403`); the operator must name
                 *     it.
                 */
                tenant_id?: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["MetricList"];
                };
            };
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    query_metric: {
        parameters: {
            query?: {
                /** @description Tenant. */
                tenant_id?: string;
                /** @description JSON object of dimension name -> value. */
                dimensions?: string;
                /** @description RFC 3339, inclusive (default: `to` - 1 h). */
                from?: string;
                /** @description RFC 3339, exclusive (default: now). */
                to?: string;
                /**
                 * @description `1m`, `5m`, `1h`... a multiple of the metric's window, or `auto` (the finest that
                 *     keeps the answer at or under about 500 windows). Default: the metric's window.
                 */
                window?: string;
                /** @description Statistic (default `count`). */
                stat?: components["schemas"]["Stat"];
                /**
                 * @description One series per value of these dimensions, comma-separated (`region` or
                 *     `region,plan`).
                 */
                group_by?: string;
                /** @description Series of a grouped answer besides `other` (default 10, at most 100). */
                limit?: number;
            };
            header?: never;
            path: {
                /** @description Metric name */
                name: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["MetricWindows"];
                };
            };
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    metric_capabilities: {
        parameters: {
            query?: {
                /** @description Tenant. */
                tenant_id?: string;
                /** @description A widget range (`last_7d`): judge every window for it, and say what `auto` picks. */
                time_window?: string;
            };
            header?: never;
            path: {
                /** @description Metric name */
                name: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["MetricCapabilities"];
                };
            };
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    list_metric_series: {
        parameters: {
            query?: {
                /** @description Tenant. */
                tenant_id?: string;
                /** @description RFC 3339 (default: `to` - 1 h). */
                from?: string;
                /** @description RFC 3339 (default: now). */
                to?: string;
                /** @description Most series answered (default 1000, at most 10000). */
                limit?: number;
            };
            header?: never;
            path: {
                /** @description Metric name */
                name: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["SeriesList"];
                };
            };
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    get_session: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["SessionOut"];
                };
            };
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    create_session: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["SignIn"];
            };
        };
        responses: {
            /** @description Signed in; `Set-Cookie: rtdash_session=...` */
            204: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    delete_session: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Signed out; the cookie is cleared */
            204: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
        };
    };
    list_silences: {
        parameters: {
            query?: {
                /** @description Tenant. */
                tenant_id?: string;
                /** @description Only the silences of this rule (and those muting every rule). */
                alert_id?: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["SilenceList"];
                };
            };
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    create_silence: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["SilenceInput"];
            };
        };
        responses: {
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["SilenceOut"];
                };
            };
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    get_silence: {
        parameters: {
            query?: {
                /** @description Tenant. */
                tenant_id?: string;
                /** @description Only the silences of this rule (and those muting every rule). */
                alert_id?: string;
            };
            header?: never;
            path: {
                /** @description Silence id */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["SilenceOut"];
                };
            };
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    expire_silence: {
        parameters: {
            query?: {
                /** @description Tenant. */
                tenant_id?: string;
                /** @description Only the silences of this rule (and those muting every rule). */
                alert_id?: string;
            };
            header?: never;
            path: {
                /** @description Silence id */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            204: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    get_status: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["StatusView"];
                };
            };
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    get_quotas: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Tenant */
                tenant: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["QuotasOut"];
                };
            };
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    put_quotas: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Tenant */
                tenant: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["QuotaSettings"];
            };
        };
        responses: {
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["QuotasOut"];
                };
            };
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
}
type FlattenedDeepRequired<T> = {
    [K in keyof T]-?: FlattenedDeepRequired<T[K] extends unknown[] | undefined | null ? Extract<T[K], unknown[]>[number] : T[K]>;
};
type ReadonlyArray<T> = [
    Exclude<T, undefined>
] extends [
    unknown[]
] ? Readonly<Exclude<T, undefined>> : Readonly<Exclude<T, undefined>[]>;
export const alertLogKindValues: ReadonlyArray<FlattenedDeepRequired<components>["schemas"]["AlertLogKind"]> = ["transition", "delivery", "test"];
export const alertStateValues: ReadonlyArray<FlattenedDeepRequired<components>["schemas"]["AlertState"]> = ["ok", "pending", "firing", "resolved"];
export const backfillPhaseValues: ReadonlyArray<FlattenedDeepRequired<components>["schemas"]["BackfillPhase"]> = ["past", "recent", "tiers"];
export const backfillStateValues: ReadonlyArray<FlattenedDeepRequired<components>["schemas"]["BackfillState"]> = ["queued", "running", "done", "failed"];
export const conditionValues: ReadonlyArray<FlattenedDeepRequired<components>["schemas"]["Condition"]> = ["gt", "lt", "gte", "lte", "eq"];
export const deliveryOutcomeValues: ReadonlyArray<FlattenedDeepRequired<components>["schemas"]["DeliveryOutcome"]> = ["delivered", "retrying", "failed", "gave_up", "skipped", "silenced"];
export const evaluateOnValues: ReadonlyArray<FlattenedDeepRequired<components>["schemas"]["EvaluateOn"]> = ["final", "provisional"];
export const freshnessStateValues: ReadonlyArray<FlattenedDeepRequired<components>["schemas"]["FreshnessState"]> = ["ok", "behind", "stale", "unknown", "disconnected"];
export const roleValues: ReadonlyArray<FlattenedDeepRequired<components>["schemas"]["Role"]> = ["ingest", "viewer", "editor", "admin"];
export const scopeValues: ReadonlyArray<FlattenedDeepRequired<components>["schemas"]["Scope"]> = ["tenant", "global", "builtin"];
export const silenceStatusValues: ReadonlyArray<FlattenedDeepRequired<components>["schemas"]["SilenceStatus"]> = ["pending", "active", "expired"];
export const statValues: ReadonlyArray<FlattenedDeepRequired<components>["schemas"]["Stat"]> = ["count", "sum", "min", "max", "avg", "p50", "p90", "p95", "p99", "unique"];
export const vizTypeValues: ReadonlyArray<FlattenedDeepRequired<components>["schemas"]["VizType"]> = ["line_chart", "area_chart", "bar_chart", "counter", "gauge", "table"];
