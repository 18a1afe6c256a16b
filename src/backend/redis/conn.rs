//! The connection to Redis: one node through a connection manager, or a Redis Cluster through
//! the redis crate's cluster client (it follows `MOVED`/`ASK`, refreshes the slot map after a
//! failover and routes each command, pipeline and script by its keys). Everything above this
//! file sees one [`Conn`] type.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, Pipeline, RedisFuture, Value};

use super::{RedisOptions, unavailable};
use crate::store::{SlotRange, StoreError, StoreResult};

/// Where the store's Redis is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One server (`redis_url`).
    Node(String),
    /// A Redis Cluster, reached through any of these seed nodes (`redis_nodes`).
    Cluster(Vec<String>),
}

/// A connection to one node or to a cluster; cheap to clone (clones share the connection).
#[derive(Clone)]
pub(super) enum Conn {
    Node(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Node(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Node(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Node(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Opens one connection to the target, within twice the command timeout.
pub(super) async fn open(opts: &RedisOptions) -> StoreResult<Conn> {
    let connect = async {
        match &opts.target {
            Target::Node(url) => {
                let client = redis::Client::open(url.as_str())
                    .map_err(|e| StoreError::Invalid(format!("redis url: {e}")))?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(opts.timeout))
                    .set_response_timeout(Some(opts.timeout))
                    .set_number_of_retries(2)
                    .set_max_delay(Duration::from_millis(500));
                ConnectionManager::new_with_config(client, config)
                    .await
                    .map(Conn::Node)
                    .map_err(unavailable)
            }
            Target::Cluster(nodes) => {
                // Retries cover a failover: the cluster client waits and re-reads the slot map
                // between attempts (about 5 s in all before a command is answered 503).
                let client = ClusterClient::builder(nodes.iter().map(String::as_str))
                    .connection_timeout(opts.timeout)
                    .response_timeout(opts.timeout)
                    .retries(6)
                    .min_retry_wait(50)
                    .max_retry_wait(1500)
                    .build()
                    .map_err(|e| StoreError::Invalid(format!("redis_nodes: {e}")))?;
                client
                    .get_async_connection()
                    .await
                    .map(Conn::Cluster)
                    .map_err(unavailable)
            }
        }
    };
    tokio::time::timeout(opts.timeout * 2, connect)
        .await
        .map_err(|_| StoreError::Unavailable("redis connection timed out".into()))?
}

/// Connections used round-robin for writes that wait for replicas (`WAIT` blocks the
/// connection it runs on, so it must not run on the connection every other request shares).
pub(super) struct WritePool {
    conns: Vec<Conn>,
    next: AtomicUsize,
}

impl WritePool {
    pub(super) async fn open(opts: &RedisOptions, size: usize) -> StoreResult<Self> {
        let mut conns = Vec::with_capacity(size);
        for _ in 0..size {
            conns.push(open(opts).await?);
        }
        Ok(Self {
            conns,
            next: AtomicUsize::new(0),
        })
    }

    pub(super) fn get(&self) -> Conn {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        self.conns[i].clone()
    }
}

impl Conn {
    /// A command's reply from every node (the node's address, its reply); one entry for a
    /// single node.
    pub(super) async fn on_every_node(&mut self, cmd: Cmd) -> StoreResult<Vec<(String, Value)>> {
        match self {
            Conn::Node(c) => {
                let v: Value = cmd.query_async(c).await.map_err(unavailable)?;
                Ok(vec![("(node)".into(), v)])
            }
            Conn::Cluster(c) => {
                let v = c
                    .route_command(
                        cmd,
                        RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllNodes, None)),
                    )
                    .await
                    .map_err(unavailable)?;
                Ok(node_replies(v))
            }
        }
    }

    /// The cluster's slot ranges with their master and replicas; empty for a single node.
    pub(super) async fn slot_ranges(&mut self) -> StoreResult<Vec<SlotRange>> {
        let Conn::Cluster(c) = self else {
            return Ok(Vec::new());
        };
        let v = c
            .route_command(
                redis::cmd("CLUSTER").arg("SLOTS").clone(),
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
            )
            .await
            .map_err(unavailable)?;
        Ok(parse_slots(&v))
    }

    /// One command on the node at `addr` (`host:port`), for per-node work such as `SCAN`.
    pub(super) async fn on_node(&mut self, addr: &str, cmd: Cmd) -> StoreResult<Value> {
        match self {
            Conn::Node(c) => cmd.query_async(c).await.map_err(unavailable),
            Conn::Cluster(c) => {
                let (host, port) = addr
                    .rsplit_once(':')
                    .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
                    .ok_or_else(|| StoreError::Invalid(format!("node address {addr}")))?;
                c.route_command(
                    cmd,
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host, port }),
                )
                .await
                .map_err(unavailable)
            }
        }
    }
}

fn node_replies(v: Value) -> Vec<(String, Value)> {
    match v {
        Value::Map(m) => m
            .into_iter()
            .map(|(k, v)| (super::bulk_str(&k).unwrap_or_default(), v))
            .collect(),
        other => vec![("(node)".into(), other)],
    }
}

fn parse_slots(v: &Value) -> Vec<SlotRange> {
    let Value::Array(ranges) = v else {
        return Vec::new();
    };
    let node = |v: &Value| match v {
        Value::Array(parts) => match (parts.first().and_then(super::bulk_str), parts.get(1)) {
            (Some(host), Some(Value::Int(port))) => Some(format!("{host}:{port}")),
            _ => None,
        },
        _ => None,
    };
    let mut out: Vec<SlotRange> = ranges
        .iter()
        .filter_map(|r| {
            let Value::Array(parts) = r else { return None };
            let (Some(Value::Int(start)), Some(Value::Int(end))) = (parts.first(), parts.get(1))
            else {
                return None;
            };
            Some(SlotRange {
                start: u16::try_from(*start).ok()?,
                end: u16::try_from(*end).ok()?,
                master: node(parts.get(2)?)?,
                replicas: parts.iter().skip(3).filter_map(node).collect(),
            })
        })
        .collect();
    out.sort_by_key(|r| r.start);
    out
}
