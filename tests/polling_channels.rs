//! Polling every JSON marketplace and shop adapter against a mock of its API on loopback
//! (issue 14): eBay REST (offset paging with `total`), Magento 2 (`currentPage` and
//! `total_count`), eBay Trading (GetOrders POSTed as XML, `PageNumber` and
//! `TotalNumberOfEntries`), Amazon SP-API 2026-01-01 (`nextToken`), Shopify (the `Link` header) and
//! Shopee (`next_cursor` and `more`, then `get_order_detail` per order), Lazada (`offset` and
//! `countTotal`, then `/order/items/get` per order), Meta Commerce (Graph cursors) and PrestaShop
//! (webservice XML, `limit=offset,count`, shop-local time). Each mock answers in
//! its channel's documented format, with orders built from the real fixtures, checks the
//! channel's auth header, filters by the watermark as the channel does, and first answers a
//! 429 with `Retry-After: 1` and then a 500.
//!
//! Checked on both stores: every order is stored once, the 429's `Retry-After` is honoured,
//! nothing is parked, the cursor is committed; then a window with no orders (each channel's
//! empty page) commits the cursor and parks nothing. (Amazon v0: `polling.rs`, with
//! slow responses and a `kill -9` too.)

mod common;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, TimeZone, Utc};
use common::*;
use crossgate::store::Store;
use serde_json::{Value, json};

type Q = Query<BTreeMap<String, String>>;

/// A channel's API with its orders (oldest first) and the faults it answers first.
struct Mock {
    orders: Vec<(DateTime<Utc>, Value)>,
    auth: (&'static str, String),
    faults: Mutex<VecDeque<u16>>,
    /// (when, status) of every request answered.
    log: Mutex<Vec<(Instant, u16)>>,
    base: OnceLock<String>,
}

impl Mock {
    /// The orders updated at or after `since`.
    fn since(&self, since: DateTime<Utc>) -> Vec<&Value> {
        self.orders
            .iter()
            .filter(|(t, _)| *t >= since)
            .map(|(_, o)| o)
            .collect()
    }
}

fn base_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap()
}

fn fixture_json(path: &str) -> Value {
    serde_json::from_slice(&fixture(path)).unwrap()
}

fn repo_json(path: &str) -> Value {
    serde_json::from_slice(&std::fs::read(repo().join(path)).unwrap()).unwrap()
}

/// Checks the channel's auth header, then answers the next injected fault, if any.
async fn gate(State(m): State<Arc<Mock>>, req: Request, next: Next) -> Response {
    let (name, want) = &m.auth;
    let ok = req.headers().get(*name).and_then(|v| v.to_str().ok()) == Some(want.as_str());
    let fault = m.faults.lock().unwrap().pop_front();
    let resp = match (ok, fault) {
        (false, _) => StatusCode::UNAUTHORIZED.into_response(),
        (true, Some(429)) => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "1")],
            axum::Json(json!({ "errors": [{ "message": "Too many requests" }] })),
        )
            .into_response(),
        (true, Some(s)) => StatusCode::from_u16(s).unwrap().into_response(),
        (true, None) => next.run(req).await,
    };
    m.log
        .lock()
        .unwrap()
        .push((Instant::now(), resp.status().as_u16()));
    resp
}

fn number(q: &BTreeMap<String, String>, key: &str, default: usize) -> usize {
    q.get(key).map_or(default, |v| v.parse().unwrap())
}

// --- eBay REST Fulfillment: filter=lastmodifieddate:[X..], limit, offset, total ------------

async fn ebay_orders(State(m): State<Arc<Mock>>, Query(q): Q) -> Response {
    let filter = &q["filter"];
    let since = filter
        .strip_prefix("lastmodifieddate:[")
        .and_then(|f| f.strip_suffix("..]"))
        .unwrap_or_else(|| panic!("filter: {filter}"));
    let since = DateTime::parse_from_rfc3339(since).unwrap().to_utc();
    let (limit, offset) = (number(&q, "limit", 50), number(&q, "offset", 0));
    let all = m.since(since);
    let page: Vec<&Value> = all.iter().skip(offset).take(limit).copied().collect();
    axum::Json(json!({ "href": format!("{}/sell/fulfillment/v1/order?offset={offset}", m.base.get().unwrap()), "total": all.len(), "limit": limit, "offset": offset, "orders": page })).into_response()
}

fn ebay_orders_built(n: usize) -> Vec<(DateTime<Utc>, Value)> {
    let templates = [
        repo_json("tests/fixtures/ebay_rest/getOrders-page-1.json")["orders"][0].clone(),
        repo_json("tests/fixtures/ebay_rest/getOrders-page-2.json")["orders"][0].clone(),
    ];
    (0..n)
        .map(|i| {
            let t = base_time() + chrono::Duration::minutes(i as i64);
            let mut o = templates[i % 2].clone();
            o["orderId"] = json!(format!("12-34567-{i:05}"));
            o["lastModifiedDate"] = json!(t.format("%Y-%m-%dT%H:%M:%S.000Z").to_string());
            (t, o)
        })
        .collect()
}

// --- Magento 2: searchCriteria filter, pageSize, currentPage (from 1), total_count ---------

async fn magento_orders(State(m): State<Arc<Mock>>, Query(q): Q) -> Response {
    let since = &q["searchCriteria[filter_groups][0][filters][0][value]"];
    let since = chrono::NaiveDateTime::parse_from_str(since, "%Y-%m-%d %H:%M:%S")
        .unwrap()
        .and_utc();
    assert_eq!(
        q["searchCriteria[filter_groups][0][filters][0][condition_type]"],
        "gteq"
    );
    let size = number(&q, "searchCriteria[pageSize]", 20);
    let page = number(&q, "searchCriteria[currentPage]", 1);
    let all = m.since(since);
    let items: Vec<&Value> = all
        .iter()
        .skip((page - 1) * size)
        .take(size)
        .copied()
        .collect();
    axum::Json(json!({ "items": items, "search_criteria": {}, "total_count": all.len() }))
        .into_response()
}

fn magento_orders_built(n: usize) -> Vec<(DateTime<Utc>, Value)> {
    let template = fixture_json("magento2/rest-v1-order-get-3.json");
    (0..n)
        .map(|i| {
            let t = base_time() + chrono::Duration::minutes(i as i64);
            let mut o = template.clone();
            o["entity_id"] = json!(1000 + i);
            o["increment_id"] = json!(format!("{:09}", 1000 + i));
            o["updated_at"] = json!(t.format("%Y-%m-%d %H:%M:%S").to_string());
            (t, o)
        })
        .collect()
}

// --- Amazon SP-API Orders 2026-01-01: lastUpdatedAfter, paginationToken --------------------

const SMALL_PAGE: usize = 2;

async fn amazon_orders(State(m): State<Arc<Mock>>, Query(q): Q) -> Response {
    assert_eq!(q["marketplaceIds"], "ATVPDKIKX0DER");
    let since = DateTime::parse_from_rfc3339(&q["lastUpdatedAfter"])
        .unwrap()
        .to_utc();
    let start = q.get("paginationToken").map_or(0, |t| t.parse().unwrap());
    let all = m.since(since);
    let page: Vec<&Value> = all.iter().skip(start).take(SMALL_PAGE).copied().collect();
    let mut body =
        json!({ "orders": page, "pagination": {}, "lastUpdatedBefore": "2026-07-01T00:00:00Z" });
    if start + SMALL_PAGE < all.len() {
        body["pagination"]["nextToken"] = json!((start + SMALL_PAGE).to_string());
    }
    axum::Json(body).into_response()
}

fn amazon_orders_built(n: usize) -> Vec<(DateTime<Utc>, Value)> {
    let template =
        fixture_json("amazon/sp-api-2026-01-01-searchOrders-example.json")["orders"][0].clone();
    (0..n)
        .map(|i| {
            let t = base_time() + chrono::Duration::minutes(i as i64);
            let mut o = template.clone();
            o["orderId"] = json!(format!("123-4567890-{i:07}"));
            o["lastUpdatedTime"] = json!(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            (t, o)
        })
        .collect()
}

// --- Shopify REST: updated_at_min, then page_info links in the Link header ----------------

async fn shopify_orders(State(m): State<Arc<Mock>>, Query(q): Q) -> Response {
    // A page_info link carries its own position and filter (Shopify refuses other filters
    // beside it); here "<since unix>-<start>".
    let (since, start) = match q.get("page_info") {
        Some(p) => {
            assert!(
                !q.contains_key("updated_at_min"),
                "the link is used as is: {q:?}"
            );
            let (s, i) = p.split_once('-').unwrap();
            (
                Utc.timestamp_opt(s.parse().unwrap(), 0).unwrap(),
                i.parse().unwrap(),
            )
        }
        None => (
            DateTime::parse_from_rfc3339(&q["updated_at_min"])
                .unwrap()
                .to_utc(),
            0,
        ),
    };
    let all = m.since(since);
    let page: Vec<&Value> = all.iter().skip(start).take(SMALL_PAGE).copied().collect();
    let mut headers = HeaderMap::new();
    if start + SMALL_PAGE < all.len() {
        let link = format!(
            "<{}/orders.json?limit=250&page_info={}-{}>; rel=\"next\"",
            m.base.get().unwrap(),
            since.timestamp(),
            start + SMALL_PAGE
        );
        headers.insert(header::LINK, link.parse().unwrap());
    }
    (headers, axum::Json(json!({ "orders": page }))).into_response()
}

fn shopify_orders_built(n: usize) -> Vec<(DateTime<Utc>, Value)> {
    let template = fixture_json("shopify/rest-2024-04-orders-list.json")["orders"][0].clone();
    (0..n)
        .map(|i| {
            let t = base_time() + chrono::Duration::minutes(i as i64);
            let mut o = template.clone();
            o["id"] = json!(5_000_000 + i);
            o["updated_at"] = json!(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            (t, o)
        })
        .collect()
}

// --- Shopee v2: get_order_list (time_from/time_to, cursor, more), get_order_detail ---------

async fn shopee_list(State(m): State<Arc<Mock>>, Query(q): Q) -> Response {
    assert_eq!(q["time_range_field"], "update_time");
    let from = Utc
        .timestamp_opt(q["time_from"].parse().unwrap(), 0)
        .unwrap();
    let to: i64 = q["time_to"].parse().unwrap();
    assert!(
        to - from.timestamp() <= 15 * 86_400,
        "Shopee allows 15 days per request"
    );
    let start: usize = q
        .get("cursor")
        .filter(|c| !c.is_empty())
        .map_or(0, |c| c.parse().unwrap());
    let all: Vec<&Value> = m
        .since(from)
        .into_iter()
        .filter(|o| o["update_time"].as_i64().unwrap() <= to)
        .collect();
    let page: Vec<Value> = all
        .iter()
        .skip(start)
        .take(SMALL_PAGE)
        .map(|o| json!({ "order_sn": o["order_sn"] }))
        .collect();
    let more = start + SMALL_PAGE < all.len();
    let next = if more {
        (start + SMALL_PAGE).to_string()
    } else {
        String::new()
    };
    axum::Json(json!({ "error": "", "message": "", "request_id": "b937c04e554847789cbf3fe33a0ad5f1", "response": { "more": more, "next_cursor": next, "order_list": page } })).into_response()
}

async fn shopee_detail(State(m): State<Arc<Mock>>, Query(q): Q) -> Response {
    let sn = &q["order_sn_list"];
    let found: Vec<&Value> = m
        .orders
        .iter()
        .map(|(_, o)| o)
        .filter(|o| o["order_sn"] == sn.as_str())
        .collect();
    assert_eq!(found.len(), 1, "{sn}");
    axum::Json(json!({ "error": "", "message": "", "request_id": "a4e9b2c1", "response": { "order_list": found } })).into_response()
}

fn shopee_orders_built(n: usize) -> Vec<(DateTime<Utc>, Value)> {
    let template =
        fixture_json("shopee/v2-get_order_detail-VND-real-masked.json")["response"]["order_list"]
            [0]
        .clone();
    (0..n)
        .map(|i| {
            let t = base_time() + chrono::Duration::minutes(i as i64);
            let mut o = template.clone();
            o["order_sn"] = json!(format!("2606010000{i:04}"));
            o["update_time"] = json!(t.timestamp());
            (t, o)
        })
        .collect()
}

// --- Lazada: /orders/get (update_after, offset, countTotal), /order/items/get per order ------

async fn lazada_orders(State(m): State<Arc<Mock>>, Query(q): Q) -> Response {
    let since = DateTime::parse_from_rfc3339(&q["update_after"])
        .unwrap()
        .to_utc();
    assert_eq!(q["sort_direction"], "ASC");
    let (limit, offset) = (number(&q, "limit", 10), number(&q, "offset", 0));
    let all = m.since(since);
    let page: Vec<&Value> = all.iter().skip(offset).take(limit).copied().collect();
    // Lazada states every count as a string.
    axum::Json(json!({ "code": "0", "request_id": "0ba2887315178178017221014", "data": { "count": page.len().to_string(), "countTotal": all.len().to_string(), "orders": page } })).into_response()
}

async fn lazada_items(Query(q): Q) -> Response {
    let mut body = repo_json("tests/fixtures/lazada/order-items-get-491253082180002.json");
    body["data"][0]["order_id"] = json!(q["order_id"]);
    axum::Json(body).into_response()
}

fn lazada_orders_built(n: usize) -> Vec<(DateTime<Utc>, Value)> {
    let template = fixture_json("lazada/orders-get-doc-example.json")["data"]["orders"][1].clone();
    (0..n)
        .map(|i| {
            let t = base_time() + chrono::Duration::minutes(i as i64);
            let mut o = template.clone();
            o["order_id"] = json!(format!("4912530821{i:05}"));
            o["order_number"] = o["order_id"].clone();
            o["updated_at"] = json!(
                t.with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
                    .to_rfc3339()
            );
            (t, o)
        })
        .collect()
}

// --- Meta Commerce: updated_after (unix), Graph cursor paging (paging.cursors.after) ---------

async fn meta_orders(State(m): State<Arc<Mock>>, Query(q): Q) -> Response {
    let since = Utc
        .timestamp_opt(q["updated_after"].parse().unwrap(), 0)
        .unwrap();
    assert!(
        q["fields"].contains("items{"),
        "Graph field expansion kept: {q:?}"
    );
    let start: usize = q
        .get("after")
        .map_or(0, |a| a.trim_start_matches('c').parse().unwrap());
    let all = m.since(since);
    let page: Vec<&Value> = all.iter().skip(start).take(SMALL_PAGE).copied().collect();
    if page.is_empty() {
        return axum::Json(json!({ "data": [] })).into_response();
    }
    let end = start + page.len();
    let mut paging =
        json!({ "cursors": { "before": format!("c{start}"), "after": format!("c{end}") } });
    if end < all.len() {
        paging["next"] = json!(format!(
            "https://graph.facebook.com/v19.0/1234567890/commerce_orders?after=c{end}"
        ));
    }
    axum::Json(json!({ "data": page, "paging": paging })).into_response()
}

fn meta_orders_built(n: usize) -> Vec<(DateTime<Utc>, Value)> {
    let template = repo_json(
        "tests/fixtures/meta_commerce/commerce_orders-with-requested-fields.json",
    )["data"][0]
        .clone();
    (0..n)
        .map(|i| {
            let t = base_time() + chrono::Duration::minutes(i as i64);
            let mut o = template.clone();
            o["id"] = json!(format!("3728929467{i:05}"));
            o["last_updated"] = json!(t.format("%Y-%m-%dT%H:%M:%S+0000").to_string());
            (t, o)
        })
        .collect()
}

// --- PrestaShop webservice (XML): filter[date_upd]=[from,to] in shop time, limit=offset,100 ---

const PRESTASHOP_TZ: chrono_tz::Tz = chrono_tz::Europe::Paris;

async fn prestashop_orders(State(m): State<Arc<Mock>>, Query(q): Q) -> Response {
    let range = q["filter[date_upd]"].trim_matches(['[', ']']);
    let (from, to) = range.split_once(',').unwrap();
    let local = |s: &str| {
        chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
            .unwrap()
            .and_local_timezone(PRESTASHOP_TZ)
            .unwrap()
            .to_utc()
    };
    let (from, to) = (local(from), local(to));
    let (offset, limit) = q["limit"].split_once(',').unwrap();
    let (offset, limit): (usize, usize) = (offset.parse().unwrap(), limit.parse().unwrap());
    let xml: String = m
        .orders
        .iter()
        .filter(|(t, _)| *t >= from && *t <= to)
        .skip(offset)
        .take(limit)
        .map(|(_, o)| o.as_str().unwrap().to_string())
        .collect();
    (
        [(header::CONTENT_TYPE, "text/xml;charset=utf-8")],
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<prestashop xmlns:xlink=\"http://www.w3.org/1999/xlink\">\n<orders>{xml}</orders>\n</prestashop>\n"),
    )
        .into_response()
}

fn prestashop_orders_built(n: usize) -> Vec<(DateTime<Utc>, Value)> {
    let list = String::from_utf8(
        std::fs::read(repo().join("tests/fixtures/prestashop/orders-list-display-full.xml"))
            .unwrap(),
    )
    .unwrap();
    let start = list.find("<order>").unwrap();
    let end = list.find("</order>").unwrap() + "</order>".len();
    let template = &list[start..end];
    (0..n)
        .map(|i| {
            let t = base_time() + chrono::Duration::minutes(i as i64);
            let shop_time = t.with_timezone(&PRESTASHOP_TZ).format("%Y-%m-%d %H:%M:%S");
            let o = template
                .replacen(
                    "<id><![CDATA[1]]></id>",
                    &format!("<id><![CDATA[{}]]></id>", 1000 + i),
                    1,
                )
                .replace(
                    "<date_upd><![CDATA[2018-02-13 09:36:22]]></date_upd>",
                    &format!("<date_upd><![CDATA[{shop_time}]]></date_upd>"),
                );
            (t, Value::String(o))
        })
        .collect()
}

// --- eBay Trading API: GetOrders POSTed as XML to /ws/api.dll, PageNumber paging ------------

/// The text of an element of the XML request (the mock reads only what it needs).
fn element<'a>(xml: &'a str, name: &str) -> &'a str {
    let open = format!("<{name}>");
    let start = xml
        .find(&open)
        .unwrap_or_else(|| panic!("no <{name}> in {xml}"))
        + open.len();
    &xml[start..start + xml[start..].find('<').unwrap()]
}

async fn ebay_trading(State(m): State<Arc<Mock>>, headers: HeaderMap, body: String) -> Response {
    assert_eq!(headers["x-ebay-api-call-name"], "GetOrders");
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/xml")
    );
    let time = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().to_utc();
    let (from, to) = (
        time(element(&body, "ModTimeFrom")),
        time(element(&body, "ModTimeTo")),
    );
    let per_page: usize = element(&body, "EntriesPerPage").parse().unwrap();
    let page: usize = element(&body, "PageNumber").parse().unwrap();
    let all: Vec<&str> = m
        .orders
        .iter()
        .filter(|(t, _)| *t >= from && *t <= to)
        .map(|(_, o)| o.as_str().unwrap())
        .collect();
    let orders: String = all
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .copied()
        .collect();
    let pages = all.len().div_ceil(per_page);
    let array = if orders.is_empty() {
        "<OrderArray/>".to_string()
    } else {
        format!("<OrderArray>{orders}</OrderArray>")
    };
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<GetOrdersResponse xmlns=\"urn:ebay:apis:eBLBaseComponents\"><Timestamp>2026-06-30T00:00:00.000Z</Timestamp><Ack>Success</Ack><Version>1193</Version><Build>E1193_CORE_API_19146280_R1</Build><PaginationResult><TotalNumberOfPages>{pages}</TotalNumberOfPages><TotalNumberOfEntries>{}</TotalNumberOfEntries></PaginationResult><HasMoreOrders>{}</HasMoreOrders>{array}<OrdersPerPage>{per_page}</OrdersPerPage><PageNumber>{page}</PageNumber><ReturnedOrderCountActual>{}</ReturnedOrderCountActual></GetOrdersResponse>",
        all.len(),
        page < pages,
        all.len()
            .saturating_sub((page - 1) * per_page)
            .min(per_page),
    );
    ([(header::CONTENT_TYPE, "text/xml;charset=utf-8")], xml).into_response()
}

fn ebay_trading_orders_built(n: usize) -> Vec<(DateTime<Utc>, Value)> {
    let doc =
        String::from_utf8(fixture("ebay/trading-GetOrdersResponse-variation-sku.xml")).unwrap();
    let template =
        &doc[doc.find("<Order>").unwrap()..doc.find("</Order>").unwrap() + "</Order>".len()];
    (0..n)
        .map(|i| {
            let t = base_time() + chrono::Duration::minutes(i as i64);
            let o = template
                .replace(
                    "<OrderID>270357010</OrderID>",
                    &format!("<OrderID>2703{i:05}</OrderID>"),
                )
                .replace(
                    "<LastModifiedTime>2014-05-02T14:01:46.000Z</LastModifiedTime>",
                    &format!(
                        "<LastModifiedTime>{}</LastModifiedTime>",
                        t.format("%Y-%m-%dT%H:%M:%S.000Z")
                    ),
                );
            (t, Value::String(o))
        })
        .collect()
}

// --- The harness ----------------------------------------------------------------------------

struct Channel {
    adapter: &'static str,
    orders: Vec<(DateTime<Utc>, Value)>,
    auth: (&'static str, &'static str),
    settings: &'static str,
    /// More secrets the adapter needs (Shopify's webhook secret, for an instance that also
    /// takes webhooks).
    secrets: &'static str,
    routes: fn() -> axum::Router<Arc<Mock>>,
}

fn channels() -> Vec<Channel> {
    vec![
        Channel {
            adapter: "ebay_rest",
            orders: ebay_orders_built(450),
            auth: ("authorization", "Bearer v^1.1#i^1#r^0#test-user-token"),
            settings: "",
            secrets: "",
            routes: || axum::Router::new().route("/sell/fulfillment/v1/order", get(ebay_orders)),
        },
        Channel {
            adapter: "magento2",
            orders: magento_orders_built(150),
            auth: ("authorization", "Bearer magento-integration-token"),
            settings: "",
            secrets: "",
            routes: || axum::Router::new().route("/V1/orders", get(magento_orders)),
        },
        Channel {
            adapter: "amazon_2026",
            orders: amazon_orders_built(5),
            auth: ("x-amz-access-token", "Atza|test-lwa-token"),
            settings: ", marketplace_id = \"ATVPDKIKX0DER\"",
            secrets: "",
            routes: || axum::Router::new().route("/orders/2026-01-01/orders", get(amazon_orders)),
        },
        Channel {
            adapter: "shopify",
            orders: shopify_orders_built(5),
            auth: ("x-shopify-access-token", "shpat_test_token"),
            settings: "",
            secrets: ", webhook = \"${TEST_CHANNEL_TOKEN}\"",
            routes: || axum::Router::new().route("/orders.json", get(shopify_orders)),
        },
        Channel {
            adapter: "shopee",
            orders: shopee_orders_built(5),
            auth: ("authorization", "shopee-test-access-token"),
            settings: "",
            secrets: "",
            routes: || {
                axum::Router::new()
                    .route("/api/v2/order/get_order_list", get(shopee_list))
                    .route("/api/v2/order/get_order_detail", get(shopee_detail))
            },
        },
        Channel {
            adapter: "lazada",
            orders: lazada_orders_built(5),
            auth: ("authorization", "lazada-test-access-token"),
            settings: ", currency = \"SGD\"",
            secrets: "",
            routes: || {
                axum::Router::new()
                    .route("/orders/get", get(lazada_orders))
                    .route("/order/items/get", get(lazada_items))
            },
        },
        Channel {
            adapter: "ebay",
            orders: ebay_trading_orders_built(150),
            auth: ("x-ebay-api-iaf-token", "v^1.1#i^1#f^0#trading-test-token"),
            settings: "",
            secrets: "",
            routes: || axum::Router::new().route("/ws/api.dll", axum::routing::post(ebay_trading)),
        },
        Channel {
            adapter: "meta_commerce",
            orders: meta_orders_built(5),
            auth: ("authorization", "Bearer EAAG-test-page-token"),
            settings: ", cms_id = \"1234567890\"",
            secrets: "",
            routes: || axum::Router::new().route("/{cms}/commerce_orders", get(meta_orders)),
        },
        Channel {
            adapter: "prestashop",
            orders: prestashop_orders_built(150),
            // HTTP Basic: the webservice key as user name, no password.
            auth: ("authorization", "Basic UFNXU0tFWTEyMzQ1Njc4OTA6"),
            settings: ", timezone = \"Europe/Paris\", currency = \"EUR\"",
            secrets: "",
            routes: || axum::Router::new().route("/orders", get(prestashop_orders)),
        },
    ]
}

async fn serve(m: Arc<Mock>, routes: axum::Router<Arc<Mock>>) -> String {
    let app = routes
        .layer(middleware::from_fn_with_state(m.clone(), gate))
        .with_state(m.clone());
    let base = serve_mock(app).await;
    m.base.set(base.clone()).unwrap();
    base
}

/// The secret the adapter makes the auth header from (bearer adds the scheme; basic encodes
/// "<key>:").
fn secret_of(auth: (&str, &str)) -> String {
    if let Some(b) = auth.1.strip_prefix("Basic ") {
        use base64::Engine;
        let plain = base64::engine::general_purpose::STANDARD.decode(b).unwrap();
        return String::from_utf8(plain)
            .unwrap()
            .trim_end_matches(':')
            .to_string();
    }
    auth.1.strip_prefix("Bearer ").unwrap_or(auth.1).to_string()
}

async fn poll_channel(ch: &Channel, backend: Backend) {
    let m = Arc::new(Mock {
        orders: ch.orders.clone(),
        auth: (ch.auth.0, ch.auth.1.to_string()),
        faults: Mutex::new(VecDeque::from([429, 500])),
        log: Mutex::new(Vec::new()),
        base: OnceLock::new(),
    });
    let base = serve(m.clone(), (ch.routes)()).await;
    let dir = tempfile::tempdir().unwrap();
    let instance = format!(
        "id = \"ch\"\nadapter = \"{}\"\naccount = \"acme\"\npoll = true\nsecrets = {{ {} = \"${{TEST_CHANNEL_TOKEN}}\"{} }}\nsettings = {{ api_base = \"{base}\"{} }}\n",
        ch.adapter,
        if ch.adapter == "prestashop" {
            "webservice_key"
        } else {
            "access_token"
        },
        ch.secrets,
        ch.settings
    );
    let token = secret_of(ch.auth);
    let cfg = instance_config(
        dir.path(),
        backend,
        &repo().join("adapters"),
        &unique_prefix("pollch"),
        &instance,
        &[("TEST_CHANNEL_TOKEN", token.as_str())],
    );
    let (store, _) = crossgate::backend::open(&cfg.store).await.unwrap();
    let poller = fast_retry_poller(cfg.instances["ch"].clone());
    let since = base_time() - chrono::Duration::hours(1);
    let mode = crossgate::channel::poll::Mode::Backfill {
        since,
        until: Some(base_time() + chrono::Duration::days(1)),
    };
    let what = format!("{} on {backend:?}", ch.adapter);
    let state = crossgate::with_store!(&store, s => poller.run(s, &mode, |_| {}).await)
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(state.orders, ch.orders.len() as u64, "{what}");
    let log = m.log.lock().unwrap().clone();
    let statuses: Vec<u16> = log.iter().map(|(_, s)| *s).collect();
    assert_eq!(&statuses[..3], &[429, 500, 200], "{what}: {statuses:?}");
    assert!(
        log[1].0 - log[0].0 >= Duration::from_millis(950),
        "{what}: Retry-After: 1 was honoured ({:?})",
        log[1].0 - log[0].0
    );
    let page = crossgate::with_store!(&store, s => s.list_orders(crossgate::store::OrderQuery {
        instance: Some("ch".into()), since: None, after: None, limit: 1000 }).await)
    .unwrap();
    assert_eq!(
        page.items.len(),
        ch.orders.len(),
        "{what}: stored once each"
    );
    let (parked, cursor) = parked_and_cursor(&store, "ch", "backfill").await;
    assert!(parked.is_empty(), "{what}: {parked:?}");
    assert!(cursor.is_some(), "{what}: cursor committed");

    // A window with no orders: the channel's empty page commits and parks nothing.
    let later = base_time() + chrono::Duration::days(20);
    let idle = crossgate::channel::poll::Mode::Backfill {
        since: later,
        until: Some(later + chrono::Duration::days(1)),
    };
    let requests = m.log.lock().unwrap().len();
    let empty = crossgate::with_store!(&store, s => poller.run(s, &idle, |_| {}).await)
        .unwrap_or_else(|e| panic!("{what}, empty page: {e}"));
    assert!(
        m.log.lock().unwrap().len() > requests,
        "{what}: the empty window was asked"
    );
    assert_eq!(empty.orders, 0, "{what}: nothing new");
    let (parked, after) = parked_and_cursor(&store, "ch", "backfill").await;
    assert!(
        parked.is_empty(),
        "{what}: an empty page parks nothing: {parked:?}"
    );
    assert_ne!(
        after, cursor,
        "{what}: the empty window's cursor is committed"
    );
    if let crossgate::backend::AnyStore::Redis(r) = store {
        r.flush_prefix().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_polled_json_channel_pages_through_429_and_500_embedded() {
    for ch in channels() {
        poll_channel(&ch, Backend::Embedded).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_polled_json_channel_pages_through_429_and_500_redis() {
    for ch in channels() {
        poll_channel(&ch, Backend::Redis).await;
    }
}
