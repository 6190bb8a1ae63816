//! The generated bindings of the `plugin` world: the only module where generated types
//! appear. The rest of the crate converts them to its own types at this boundary.

mod generated {
    wasmtime::component::bindgen!({
        world: "plugin",
        path: "../wit",
        with: {
            "gateway:auth/transport.connection": crate::transport::Connection,
        },
    });
}

pub(crate) use generated::Plugin as PluginBindings;
pub(crate) use generated::PluginPre;
pub(crate) use generated::exports::gateway::auth::{oauth, tls_cache};
pub(crate) use generated::gateway::auth::{store, transport, types};
