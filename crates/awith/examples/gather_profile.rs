//! `asyncio.gather` inside `async with`: three different queries on one
//! connection, at once; the first failure cancels the others, and their
//! scopes are told why (`Cancel::SiblingFailed`).

// A program that prints, and unwraps where a user would.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::error::Error;
use std::time::Duration;

use awith::{ResourceExt, gather, resource};

#[derive(Debug)]
struct User {
    name: String,
}

async fn user(rt: &awith::Runtime, id: u32) -> Result<User, std::io::Error> {
    rt.sleep(Duration::from_millis(30)).await;
    Ok(User {
        name: format!("user-{id}"),
    })
}

/// Reads through a cursor: a scope of its own, told why if it is cut short.
async fn orders(rt: &awith::Runtime, _id: u32) -> Result<Vec<u64>, std::io::Error> {
    let cursor = resource(
        || async { Ok::<_, std::io::Error>("orders cursor") },
        |cursor, exit| async move {
            println!("closed {cursor}: {exit}");
            Ok(())
        },
    );
    cursor
        .with(rt, async |_| {
            rt.sleep(Duration::from_millis(20)).await;
            Ok::<_, std::io::Error>(vec![17, 42])
        })
        .await
        .map_err(std::io::Error::other)
}

async fn prefs(rt: &awith::Runtime, id: u32) -> Result<Option<String>, std::io::Error> {
    rt.sleep(Duration::from_millis(10)).await;
    if id == 0 {
        return Err(std::io::Error::other("no such user"));
    }
    Ok(Some("dark mode".into()))
}

async fn run(rt: awith::Runtime) -> Result<(), Box<dyn Error + Send + Sync>> {
    let db = || {
        resource(
            || async { Ok::<_, std::io::Error>("db connection") },
            |conn, exit| async move {
                println!("closed {conn}: {exit}");
                Ok(())
            },
        )
    };

    let started = std::time::Instant::now();
    let (profile, bought, settings) = db()
        .with(&rt, async |_conn| {
            gather!(user(&rt, 7), orders(&rt, 7), prefs(&rt, 7)).await
        })
        .await?;
    println!(
        "{} bought {bought:?}, prefers {settings:?} ({:?})",
        profile.name,
        started.elapsed()
    );

    let failed = db()
        .with(&rt, async |_conn| {
            gather!(user(&rt, 0), orders(&rt, 0), prefs(&rt, 0)).await
        })
        .await;
    println!("for user 0: {}", failed.unwrap_err());

    rt.drain(Duration::from_secs(5)).await?;
    Ok(())
}

fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    match std::env::args().nth(1).as_deref().unwrap_or("tokio") {
        "tokio" => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(async { run(awith::tokio::runtime()?).await }),
        "smol" => smol::block_on(run(awith::smol::runtime())),
        "async-std" => async_std::task::block_on(run(awith::async_std::runtime())),
        other => Err(format!("unknown runtime {other:?}: tokio, smol or async-std").into()),
    }
}
