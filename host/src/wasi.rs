//! The WASI 0.2 imports the plugin's standard library asks for, and nothing more.
//!
//! The component reaches the network through our own `transport` import, so of WASI it
//! needs only clocks, randomness, stderr for panic messages and an empty environment.
//! Supplying exactly that here (instead of a general WASI implementation) keeps the
//! plugin away from files, sockets and the host's environment, and keeps an async
//! runtime out of every gateway that embeds this library. Anything else the component
//! imports (stdin, `exit`) traps with a message that names it.

use std::io::Write;
use std::time::{Duration, Instant};

use wasmtime::component::{
    ComponentType, Lift, Linker, LinkerInstance, Lower, Resource, ResourceType,
};
use wasmtime::{StoreContextMut, bail};

use crate::state::HostState;

/// The WASI version the instance names carry; wasmtime matches any 0.2.x import to it.
const VERSION: &str = "0.2.6";

/// The most random bytes one call may ask for, so a bad request cannot exhaust memory.
const MAX_RANDOM_BYTES: u64 = 1 << 20;

/// How much the plugin may write to an output stream at once.
const WRITE_BUDGET: u64 = 64 << 10;

/// A `wasi:io/poll` pollable: ready now, or once an instant has passed.
pub(crate) enum Pollable {
    /// Ready at once (output streams never block).
    Ready,
    /// Ready from this instant on.
    At(Instant),
}

impl Pollable {
    fn ready(&self) -> bool {
        match self {
            Self::Ready => true,
            Self::At(when) => Instant::now() >= *when,
        }
    }

    fn block(&self) {
        if let Self::At(when) = self {
            let now = Instant::now();
            if *when > now {
                std::thread::sleep(*when - now);
            }
        }
    }
}

/// A `wasi:io/streams` output stream: the plugin's stdout (discarded) or stderr (the
/// host's stderr, where a panic message lands).
#[derive(Clone, Copy)]
pub(crate) enum OutputStream {
    Stdout,
    Stderr,
}

/// Resources the component's imports name but this host never creates.
pub(crate) enum Never {}

/// `wasi:clocks/wall-clock.datetime`.
#[derive(ComponentType, Lift, Lower, Clone, Copy)]
#[component(record)]
struct Datetime {
    seconds: u64,
    nanoseconds: u32,
}

/// `wasi:io/streams.stream-error`. Writes here never fail, so only `closed` is used
/// (for streams that do not exist).
#[derive(ComponentType, Lift, Lower)]
#[component(variant)]
enum StreamError {
    #[component(name = "last-operation-failed")]
    LastOperationFailed(Resource<Never>),
    #[component(name = "closed")]
    Closed,
}

type Store<'a> = StoreContextMut<'a, HostState>;

/// Adds the WASI imports to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    poll(&mut interface(linker, "io", "poll")?)?;
    interface(linker, "io", "error")?.resource(
        "error",
        ResourceType::host::<Never>(),
        drop_never,
    )?;
    streams(&mut interface(linker, "io", "streams")?)?;
    monotonic_clock(&mut interface(linker, "clocks", "monotonic-clock")?)?;
    wall_clock(&mut interface(linker, "clocks", "wall-clock")?)?;
    random(linker)?;
    cli(linker)?;
    Ok(())
}

fn interface<'a>(
    linker: &'a mut Linker<HostState>,
    package: &str,
    name: &str,
) -> wasmtime::Result<LinkerInstance<'a, HostState>> {
    linker.instance(&format!("wasi:{package}/{name}@{VERSION}"))
}

/// Defines resource `name`, whose handles are entries of type `T` in the store's table.
fn table_resource<T: Send + 'static>(
    inst: &mut LinkerInstance<'_, HostState>,
    name: &str,
) -> wasmtime::Result<()> {
    inst.resource(name, ResourceType::host::<T>(), |mut store, rep| {
        store.data_mut().table.delete(Resource::<T>::new_own(rep))?;
        Ok(())
    })
}

fn pollable_resource(inst: &mut LinkerInstance<'_, HostState>) -> wasmtime::Result<()> {
    table_resource::<Pollable>(inst, "pollable")
}

fn output_stream_resource(inst: &mut LinkerInstance<'_, HostState>) -> wasmtime::Result<()> {
    table_resource::<OutputStream>(inst, "output-stream")
}

fn drop_never(_: Store<'_>, _: u32) -> wasmtime::Result<()> {
    Ok(())
}

fn new_pollable(store: &mut Store<'_>, pollable: Pollable) -> wasmtime::Result<Resource<Pollable>> {
    Ok(store.data_mut().table.push(pollable)?)
}

fn poll(inst: &mut LinkerInstance<'_, HostState>) -> wasmtime::Result<()> {
    pollable_resource(inst)?;
    inst.func_wrap(
        "[method]pollable.ready",
        |store: Store<'_>, (this,): (Resource<Pollable>,)| {
            Ok((store.data().table.get(&this)?.ready(),))
        },
    )?;
    inst.func_wrap(
        "[method]pollable.block",
        |store: Store<'_>, (this,): (Resource<Pollable>,)| {
            store.data().table.get(&this)?.block();
            Ok(())
        },
    )?;
    inst.func_wrap(
        "poll",
        |store: Store<'_>, (all,): (Vec<Resource<Pollable>>,)| {
            let table = &store.data().table;
            let pollables = all
                .iter()
                .map(|p| table.get(p))
                .collect::<Result<Vec<_>, _>>()?;
            if pollables.is_empty() {
                bail!("wasi:io/poll.poll called with no pollables");
            }
            loop {
                let ready: Vec<u32> = (0u32..)
                    .zip(&pollables)
                    .filter(|(_, p)| p.ready())
                    .map(|(i, _)| i)
                    .collect();
                if !ready.is_empty() {
                    return Ok((ready,));
                }
                let soonest = pollables.iter().filter_map(|p| match p {
                    Pollable::At(when) => Some(*when),
                    Pollable::Ready => None,
                });
                if let Some(when) = soonest.min() {
                    Pollable::At(when).block();
                }
            }
        },
    )?;
    Ok(())
}

fn streams(inst: &mut LinkerInstance<'_, HostState>) -> wasmtime::Result<()> {
    pollable_resource(inst)?;
    output_stream_resource(inst)?;
    inst.resource("input-stream", ResourceType::host::<Never>(), drop_never)?;
    inst.resource("error", ResourceType::host::<Never>(), drop_never)?;
    type Stream = (Resource<OutputStream>,);
    type Written = wasmtime::Result<(Result<(), StreamError>,)>;
    fn write(store: Store<'_>, (this, bytes): (Resource<OutputStream>, Vec<u8>)) -> Written {
        if let OutputStream::Stderr = store.data().table.get(&this)? {
            // Best effort, as a process's own stderr is: a full pipe must not stop the plugin.
            let _ = std::io::stderr().write_all(&bytes);
        }
        Ok((Ok(()),))
    }
    inst.func_wrap(
        "[method]output-stream.check-write",
        |_: Store<'_>, _: Stream| Ok((Ok::<u64, StreamError>(WRITE_BUDGET),)),
    )?;
    inst.func_wrap("[method]output-stream.write", write)?;
    inst.func_wrap("[method]output-stream.blocking-write-and-flush", write)?;
    inst.func_wrap(
        "[method]output-stream.flush",
        |_: Store<'_>, _: Stream| -> Written { Ok((Ok(()),)) },
    )?;
    inst.func_wrap(
        "[method]output-stream.blocking-flush",
        |_: Store<'_>, _: Stream| -> Written { Ok((Ok(()),)) },
    )?;
    inst.func_wrap(
        "[method]output-stream.subscribe",
        |mut store: Store<'_>, _: Stream| Ok((new_pollable(&mut store, Pollable::Ready)?,)),
    )?;
    Ok(())
}

fn monotonic_clock(inst: &mut LinkerInstance<'_, HostState>) -> wasmtime::Result<()> {
    pollable_resource(inst)?;
    inst.func_wrap("now", |store: Store<'_>, (): ()| {
        Ok((store.data().started.elapsed().as_nanos() as u64,))
    })?;
    inst.func_wrap("resolution", |_: Store<'_>, (): ()| Ok((1u64,)))?;
    inst.func_wrap(
        "subscribe-instant",
        |mut store: Store<'_>, (when,): (u64,)| {
            let when = store.data().started + Duration::from_nanos(when);
            Ok((new_pollable(&mut store, Pollable::At(when))?,))
        },
    )?;
    inst.func_wrap(
        "subscribe-duration",
        |mut store: Store<'_>, (wait,): (u64,)| {
            let when = Instant::now() + Duration::from_nanos(wait);
            Ok((new_pollable(&mut store, Pollable::At(when))?,))
        },
    )?;
    Ok(())
}

fn wall_clock(inst: &mut LinkerInstance<'_, HostState>) -> wasmtime::Result<()> {
    inst.func_wrap("now", |store: Store<'_>, (): ()| {
        let now = store.data().clock.now();
        Ok((Datetime {
            seconds: now.as_secs(),
            nanoseconds: now.subsec_nanos(),
        },))
    })?;
    inst.func_wrap("resolution", |_: Store<'_>, (): ()| {
        Ok((Datetime {
            seconds: 0,
            nanoseconds: 1,
        },))
    })?;
    Ok(())
}

fn random_bytes(len: u64) -> wasmtime::Result<Vec<u8>> {
    if len > MAX_RANDOM_BYTES {
        bail!(
            "the plugin asked for {len} random bytes; at most {MAX_RANDOM_BYTES} are given at once"
        );
    }
    let mut bytes = vec![0; len as usize];
    getrandom::fill(&mut bytes)
        .map_err(|e| wasmtime::format_err!("no randomness from the system: {e}"))?;
    Ok(bytes)
}

fn random_u64() -> wasmtime::Result<u64> {
    let bytes = random_bytes(8)?;
    Ok(u64::from_le_bytes(bytes.try_into().expect("eight bytes")))
}

fn random(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    let mut inst = interface(linker, "random", "random")?;
    inst.func_wrap("get-random-bytes", |_: Store<'_>, (len,): (u64,)| {
        Ok((random_bytes(len)?,))
    })?;
    inst.func_wrap("get-random-u64", |_: Store<'_>, (): ()| {
        Ok((random_u64()?,))
    })?;
    let mut inst = interface(linker, "random", "insecure-seed")?;
    inst.func_wrap("insecure-seed", |_: Store<'_>, (): ()| {
        Ok(((random_u64()?, random_u64()?),))
    })?;
    let mut inst = interface(linker, "random", "insecure")?;
    inst.func_wrap(
        "get-insecure-random-bytes",
        |_: Store<'_>, (len,): (u64,)| Ok((random_bytes(len)?,)),
    )?;
    inst.func_wrap("get-insecure-random-u64", |_: Store<'_>, (): ()| {
        Ok((random_u64()?,))
    })?;
    Ok(())
}

fn cli(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    let mut inst = interface(linker, "cli", "environment")?;
    inst.func_wrap("get-environment", |_: Store<'_>, (): ()| {
        Ok((Vec::<(String, String)>::new(),))
    })?;
    inst.func_wrap("get-arguments", |_: Store<'_>, (): ()| {
        Ok((Vec::<String>::new(),))
    })?;
    inst.func_wrap("initial-cwd", |_: Store<'_>, (): ()| Ok((None::<String>,)))?;

    let mut inst = interface(linker, "cli", "exit")?;
    inst.func_wrap(
        "exit",
        |_: Store<'_>, (status,): (Result<(), ()>,)| -> wasmtime::Result<()> {
            bail!(
                "the plugin called exit ({})",
                if status.is_ok() { "success" } else { "failure" }
            )
        },
    )?;

    let mut inst = interface(linker, "cli", "stdin")?;
    inst.resource("input-stream", ResourceType::host::<Never>(), drop_never)?;
    inst.func_wrap(
        "get-stdin",
        |_: Store<'_>, (): ()| -> wasmtime::Result<(Resource<Never>,)> {
            bail!("the plugin has no stdin")
        },
    )?;

    for (name, stream) in [
        ("stdout", OutputStream::Stdout),
        ("stderr", OutputStream::Stderr),
    ] {
        let mut inst = interface(linker, "cli", name)?;
        output_stream_resource(&mut inst)?;
        inst.func_wrap(
            &format!("get-{name}"),
            move |mut store: Store<'_>, (): ()| Ok((store.data_mut().table.push(stream)?,)),
        )?;
    }

    // Not a terminal: each `get-terminal-*` answers none.
    for (interface_name, resource) in [
        ("terminal-input", "terminal-input"),
        ("terminal-output", "terminal-output"),
    ] {
        interface(linker, "cli", interface_name)?.resource(
            resource,
            ResourceType::host::<Never>(),
            drop_never,
        )?;
    }
    for (name, resource) in [
        ("stdin", "terminal-input"),
        ("stdout", "terminal-output"),
        ("stderr", "terminal-output"),
    ] {
        let mut inst = interface(linker, "cli", &format!("terminal-{name}"))?;
        inst.resource(resource, ResourceType::host::<Never>(), drop_never)?;
        inst.func_wrap(&format!("get-terminal-{name}"), |_: Store<'_>, (): ()| {
            Ok((None::<Resource<Never>>,))
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pollable_is_ready_once_its_instant_has_passed_and_blocks_until_then() {
        assert!(Pollable::Ready.ready());
        assert!(Pollable::At(Instant::now()).ready());
        let soon = Pollable::At(Instant::now() + Duration::from_millis(30));
        assert!(!soon.ready());
        let start = Instant::now();
        soon.block();
        assert!(start.elapsed() >= Duration::from_millis(25));
        assert!(soon.ready());
    }

    #[test]
    fn random_bytes_are_fresh_and_an_oversized_request_is_refused() {
        let (a, b) = (random_bytes(32).unwrap(), random_bytes(32).unwrap());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        let err = random_bytes(MAX_RANDOM_BYTES + 1).unwrap_err();
        assert!(err.to_string().contains("random bytes"), "{err}");
    }
}
