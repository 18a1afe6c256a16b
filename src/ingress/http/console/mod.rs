//! The ops console (issue 16): server-rendered pages under `/console`, behind the API token
//! (a login form sets a signed, HttpOnly, SameSite=Strict session cookie; every form that
//! changes something carries a CSRF token bound to the session; a strict
//! Content-Security-Policy allows nothing but this server's stylesheet). The pages read the
//! same typed answers as `/v1`, by calling its handlers: there is no second source of truth.
//! No page needs JavaScript.

mod adapters;
mod auth;
mod chart;
mod fx;
mod pages;
mod view;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use super::App;
use crate::backend::Stores;

pub(super) fn routes<S: Stores>(app: App<S>) -> Router<App<S>> {
    let pages = Router::new()
        .route("/console", get(pages::overview::<S>))
        .route("/console/dead-letters", get(pages::dead_letters::<S>))
        .route("/console/dead-letters/replay", post(pages::replay_all::<S>))
        .route("/console/dead-letters/{id}", get(pages::dead_letter::<S>))
        .route(
            "/console/dead-letters/{id}/replay",
            post(pages::replay::<S>),
        )
        .route(
            "/console/dead-letters/{id}/discard",
            post(pages::discard::<S>),
        )
        .route(
            "/console/dead-letters/{id}/reveal",
            post(pages::reveal::<S>),
        )
        .route("/console/orders", get(pages::orders::<S>))
        .route("/console/fx", get(fx::review::<S>))
        .route("/console/adapters", get(adapters::loaded::<S>))
        .route("/console/adapters/reload", post(adapters::reload::<S>))
        .route("/console/fx/export.csv", get(fx::export::<S>))
        .route("/console/fx/verify", post(fx::verify::<S>))
        .route("/console/orders/{id}", get(pages::order::<S>))
        .route("/console/logout", post(logout::<S>))
        .route_layer(middleware::from_fn_with_state(app, require_session::<S>));
    Router::new()
        .route("/console/login", get(login_form::<S>).post(login::<S>))
        .route("/console/style.css", get(style))
        .merge(pages)
        .layer(middleware::from_fn(security_headers))
}

fn keys<S>(app: &App<S>) -> auth::Keys {
    let config = app.config();
    auth::Keys::new(
        config.server.api_token.as_ref().map(|t| t.expose()),
        config.server.read_token.as_ref().map(|t| t.expose()),
    )
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The session of a page request (set by [`require_session`]).
#[derive(Clone)]
struct Session(String);

/// Pages need a session; without one the browser is sent to the login form.
async fn require_session<S: Stores>(
    State(app): State<App<S>>,
    mut req: Request,
    next: Next,
) -> Response {
    match keys(&app).session(req.headers(), now()) {
        Some(s) => {
            req.extensions_mut().insert(Session(s));
            next.run(req).await
        }
        None => Redirect::to("/console/login").into_response(),
    }
}

/// Every console answer: nothing but this server's stylesheet may load, no framing, no
/// sniffing, no caching of pages that hold order data.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

async fn style() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        view::STYLE,
    )
        .into_response()
}

async fn login_form<S: Stores>(State(app): State<App<S>>) -> Response {
    if !keys(&app).login {
        return Redirect::to("/console").into_response();
    }
    Html(view::login_page(false).into_string()).into_response()
}

/// A form body's fields.
fn form(body: &Bytes) -> std::collections::HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

async fn login<S: Stores>(State(app): State<App<S>>, body: Bytes) -> Response {
    let keys = keys(&app);
    let fields = form(&body);
    let given = fields.get("token").map(String::as_str).unwrap_or("");
    let Some(scope) = keys.token_scope(given) else {
        tracing::warn!("console login refused");
        let page = view::login_page(true).into_string();
        return (StatusCode::UNAUTHORIZED, Html(page)).into_response();
    };
    tracing::info!(read_only = scope == auth::Scope::Read, "console login");
    let cookie = auth::set_cookie(Some(&keys.new_session(now(), scope)));
    ([(header::SET_COOKIE, cookie)], Redirect::to("/console")).into_response()
}

async fn logout<S: Stores>(
    State(app): State<App<S>>,
    axum::Extension(Session(session)): axum::Extension<Session>,
    body: Bytes,
) -> Response {
    if let Some(refused) = csrf_refusal_for_reading(&app, &session, &body) {
        return refused;
    }
    let cookie = auth::set_cookie(None);
    (
        [(header::SET_COOKIE, cookie)],
        Redirect::to("/console/login"),
    )
        .into_response()
}

/// A form that changes something must carry the session's CSRF token, and come from a
/// session that may change things: the refusal when it does not.
fn csrf_refusal<S>(app: &App<S>, session: &str, body: &Bytes) -> Option<Response> {
    if let Some(refused) = csrf_refusal_for_reading(app, session, body) {
        return Some(refused);
    }
    if auth::Scope::of(session) == auth::Scope::Read {
        tracing::warn!("console action refused: read-only login");
        let text = "This login may only read: log in with the API token to change anything.";
        return Some((StatusCode::FORBIDDEN, text).into_response());
    }
    None
}

/// A form that only reads (verify the FX log, log out) must still carry the session's CSRF
/// token; any session may send it.
fn csrf_refusal_for_reading<S>(app: &App<S>, session: &str, body: &Bytes) -> Option<Response> {
    let fields = form(body);
    let token = fields.get("csrf").map(String::as_str).unwrap_or("");
    if keys(app).csrf_ok(session, token) {
        return None;
    }
    tracing::warn!("console form refused: missing or wrong CSRF token");
    let text = "The form is out of date: reload the page.";
    Some((StatusCode::FORBIDDEN, text).into_response())
}
