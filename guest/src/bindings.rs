//! The generated WIT bindings: the only module where generated types appear.
#![allow(missing_docs, unsafe_code, clippy::all)]

wit_bindgen::generate!({
    world: "plugin",
    path: "../wit",
});

use crate::component::Component;

export!(Component with_types_in crate::bindings);
