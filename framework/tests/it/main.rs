//! The integration tests of this crate, in one test binary: each module
//! was a test binary of its own, and linking the whole crate 40 times
//! took most of CI's time.

mod bus_capacity;
mod busy_time;
mod chat;
mod client;
mod common;
mod conn_load;
mod conn_stream;
mod defer;
mod echo;
mod flush_notify;
mod framing;
mod gateway;
mod half_close;
mod hardening;
mod http_hostile;
mod http_kit;
mod http_server;
mod large_replies;
mod layering;
mod lifecycle;
mod lifecycle_phases;
mod loop_figures;
mod migration;
mod per_ip_limits;
mod placement;
mod proxy_protocol;
mod real_clients;
mod resp_kv;
mod resp_parser;
mod resp_vs_redis;
mod server_config;
mod signals;
mod socket_options;
mod stop;
mod systemd;
mod tasks;
mod telemetry;
mod timers;
mod tls;
mod tls_real_clients;
mod twisted_basic;
mod udp;
mod unix;
mod websocket;
