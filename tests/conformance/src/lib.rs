//! # awith-conformance
//!
//! The one suite every awith runtime binding passes, and the first user of
//! the public test matrix (`awith::test`). The tests are async functions over
//! an [`Env`] (an awith runtime, its recorded incidents, an
//! identity check, the kind of runtime); [`conformance_suite!`] makes each an
//! `#[awith::test]`, so each runs on every runtime the build enables (tokio
//! current-thread, tokio multi-thread, async-std, smol) and on the
//! deterministic reference runtime, as `name::runtime` (`cargo test smol`
//! runs the smol ones). Every test starts on a fresh runtime and checks first
//! that its main future really runs on the runtime it names; at its end the
//! matrix drains the runtime's cleanups.
#![allow(missing_docs, clippy::unwrap_used)]

pub mod probe;
pub mod suite;

pub use awith::test::Env;
pub use probe::quiet_probe_panics;

#[macro_export]
macro_rules! conformance_suite {
    () => {
        $crate::conformance_suite!(@suite (
            reference, tokio_current_thread, tokio_multi_thread, async_std, smol
        ));
    };
    ($($runtime:ident),+ $(,)?) => {
        $crate::conformance_suite!(@suite ($($runtime),+));
    };
    (@suite $only:tt) => {
        use $crate::probe::Step::{Err as E, Ok as O, Panic as P};
        use $crate::suite;

        $crate::conformance_suite!(@outcome $only;
            outcome_ok_ok_ok(O, O, O), outcome_ok_ok_err(O, O, E), outcome_ok_ok_panic(O, O, P),
            outcome_ok_err_ok(O, E, O), outcome_ok_err_err(O, E, E), outcome_ok_err_panic(O, E, P): "allowed",
            outcome_ok_panic_ok(O, P, O), outcome_ok_panic_err(O, P, E): "allowed", outcome_ok_panic_panic(O, P, P): "allowed",
            outcome_err_ok_ok(E, O, O), outcome_err_ok_err(E, O, E), outcome_err_ok_panic(E, O, P),
            outcome_err_err_ok(E, E, O), outcome_err_err_err(E, E, E), outcome_err_err_panic(E, E, P),
            outcome_err_panic_ok(E, P, O), outcome_err_panic_err(E, P, E), outcome_err_panic_panic(E, P, P),
            outcome_panic_ok_ok(P, O, O), outcome_panic_ok_err(P, O, E), outcome_panic_ok_panic(P, O, P),
            outcome_panic_err_ok(P, E, O), outcome_panic_err_err(P, E, E), outcome_panic_err_panic(P, E, P),
            outcome_panic_panic_ok(P, P, O), outcome_panic_panic_err(P, P, E), outcome_panic_panic_panic(P, P, P),
        );

        $crate::conformance_suite!(@cancel $only;
            cancel_all_ok("all_ok"),
            cancel_body_err("body_err"),
            cancel_body_panic("body_panic"),
            cancel_release_err("release_err"),
            cancel_release_panic("release_panic"),
            cancel_acquire_err("acquire_err"),
            cancel_acquire_panic("acquire_panic"),
            cancel_release_sleeps("release_sleeps"),
        );

        $crate::conformance_suite!(@compose $only;
            cancel_and_then("and_then"),
            cancel_zip("zip"),
            cancel_nested("nested"),
            cancel_nested_deep("nested_deep"),
            cancel_map("map"),
            cancel_timed("timed"),
            cancel_stack("stack"),
        );

        $crate::conformance_suite!(@plain $only;
            guide_runtime_differences = suite::guide::runtime_differences,
            api_error_accessors = suite::api::error_accessors,
            api_error_chains_through_parts_and_dyn = suite::api::error_chains_through_parts_and_dyn,
            api_helper_returns_resource = suite::api::helper_returns_resource,
            api_pool_and_transaction_compose = suite::api::pool_and_transaction_compose,
            api_failures_flatten_in_order = suite::api::failures_flatten_in_order,
            api_cancel_safe_acquire_stops_at_timeout = suite::api::cancel_safe_acquire_stops_at_timeout,
            api_plain_stack_keeps_a_suppressed_error = suite::api::plain_stack_keeps_a_suppressed_error,
            api_cancel_safe_acquire_drop_panics_at_timeout = suite::api::cancel_safe_acquire_drop_panics_at_timeout,
        );

        $crate::conformance_suite!(@plain $only;
            lock_config_errors = suite::lock::config_errors,
            lock_tripwire_api = suite::lock::tripwire_api,
            lock_excludes_and_fences = suite::lock::excludes_and_fences,
            lock_fifo_handoff = suite::lock::fifo_handoff,
            lock_wait_times_out = suite::lock::wait_times_out,
            lock_renewal_holds_the_lock = suite::lock::renewal_holds_the_lock,
            lock_renewal_serves_lease_after_lease = suite::lock::renewal_serves_lease_after_lease,
            lock_refused_extension_cancels_body = suite::lock::refused_extension_cancels_body,
            lock_failing_extensions_lose_at_expiry = suite::lock::failing_extensions_lose_at_expiry,
            lock_hanging_extension_loses_at_expiry = suite::lock::hanging_extension_loses_at_expiry,
            lock_panicking_extension_loses_at_expiry = suite::lock::panicking_extension_loses_at_expiry,
            lock_signal_policy_only_signals = suite::lock::signal_policy_only_signals,
            lock_lost_lease_cancels_through_compositions = suite::lock::lost_lease_cancels_through_compositions,
            lock_cancellation_gives_the_key_back = suite::lock::cancellation_gives_the_key_back,
            lock_failed_release_is_returned = suite::lock::failed_release_is_returned,
            lock_hanging_or_panicking_try = suite::lock::hanging_or_panicking_try,
            lock_lost_lease_stops_the_body_before_its_next_step = suite::lock::lost_lease_stops_the_body_before_its_next_step,
            lock_hanging_or_panicking_release = suite::lock::hanging_or_panicking_release,
            lock_panicking_or_silent_waiter = suite::lock::panicking_or_silent_waiter,
        );

        $crate::conformance_suite!(@plain $only;
            tx_commit_and_rollback = suite::tx::commit_and_rollback,
            tx_savepoints = suite::tx::savepoints,
            tx_cancelled_at_every_await_point = suite::tx::cancelled_at_every_await_point,
            tx_cancelled_inner_scope_rolls_back_before_next_statement = suite::tx::cancelled_inner_scope_rolls_back_before_next_statement,
            tx_pool_next_user_finds_no_open_transaction = suite::tx::pool_next_user_finds_no_open_transaction,
            tx_commit_failure_is_the_scopes_error = suite::tx::commit_failure_is_the_scopes_error,
            tx_failed_rollback_closes_the_connection = suite::tx::failed_rollback_closes_the_connection,
            tx_cancelled_rollback_that_fails_or_hangs = suite::tx::cancelled_rollback_that_fails_or_hangs,
            tx_panics = suite::tx::panics,
            tx_hanging_begin_or_commit_is_cancellable = suite::tx::hanging_begin_or_commit_is_cancellable,
            tx_retries = suite::tx::retries,
            tx_leaked_scope_is_rolled_back_by_reset_or_drop = suite::tx::leaked_scope_is_rolled_back_by_reset_or_drop,
            tx_owned_transaction_resource = suite::tx::owned_transaction_resource,
        );

        $crate::conformance_suite!(@plain $only;
            compose_and_then_releases_in_reverse = suite::compose::and_then_releases_in_reverse,
            compose_and_then_second_acquire_fails = suite::compose::and_then_second_acquire_fails,
            compose_zip_keeps_every_failure = suite::compose::zip_keeps_every_failure,
            compose_zip_one_acquire_fails = suite::compose::zip_one_acquire_fails,
            compose_map_and_map_err = suite::compose::map_and_map_err,
            compose_and_then_second_body_timeout = suite::compose::and_then_second_body_timeout,
            compose_zip_release_panic_reports_the_body_error = suite::compose::zip_release_panic_reports_the_body_error: "allowed",
            compose_combined_acquire_panics_report_failures = suite::compose::combined_acquire_panics_report_failures: "allowed",
            compose_combined_dropped_half_way_reports = suite::compose::combined_dropped_half_way_reports,
            scope_body_timeout_then_release_panics = suite::outcome::body_timeout_then_release_panics: "allowed",
            scope_body_dropped_at_timeout_panics = suite::outcome::body_dropped_at_timeout_panics: "allowed",
            scope_body_dropped_at_cancellation_panics = suite::outcome::body_dropped_at_cancellation_panics,
            scope_output_dropped_while_releasing_panics = suite::outcome::output_dropped_while_releasing_panics,
            scope_release_dropped_at_timeout_panics = suite::outcome::release_dropped_at_timeout_panics: "allowed",
            scope_hanging_cleanups_are_bounded = suite::outcome::hanging_cleanups_are_bounded,
            scope_callbacks_that_panic = suite::outcome::callbacks_that_panic: "allowed",
            compose_and_then_function_panics = suite::compose::and_then_function_panics,
            stack_exits_run_in_reverse_order = suite::stack::exits_run_in_reverse_order,
            stack_suppression_table = suite::stack::suppression_table,
            stack_suppression_drops_only_what_was_shown = suite::stack::suppression_drops_only_what_was_shown,
            stack_exits_see_the_newest_failure = suite::stack::exits_see_the_newest_failure,
            stack_cpython_exit_stack_cases = suite::stack::cpython_exit_stack_cases,
            stack_matches_nested_scopes = suite::stack::stack_matches_nested_scopes: "allowed",
            stack_panicking_exit_reports_the_failures_in_flight = suite::stack::panicking_exit_reports_the_failures_in_flight: "allowed",
            stack_entered_body_timeout_bounds_the_body = suite::stack::entered_body_timeout_bounds_the_body,
            stack_standalone_refuses_a_body_timeout = suite::stack::standalone_stack_refuses_a_body_timeout,
            stack_detached_exits_survive_hangs_and_panics = suite::stack::detached_exits_survive_hangs_and_panics,
            stack_cancelled_while_exiting_reports_what_was_in_flight = suite::stack::cancelled_while_exiting_reports_what_was_in_flight: "allowed",
            stack_body_dropped_at_entered_timeout_panics = suite::stack::body_dropped_at_entered_timeout_panics: "allowed",
            stack_functions_that_panic = suite::stack::stack_functions_that_panic: "allowed",
            stack_entered_timeout_then_exit_panics = suite::stack::entered_timeout_then_exit_panics: "allowed",
            stack_keys_name_their_entries = suite::stack::keys_name_their_entries,
            stack_suppressed_failure_panics_when_dropped = suite::stack::suppressed_failure_panics_when_dropped,
            stack_panicking_exit = suite::stack::panicking_exit: "allowed",
            stack_enter_failure_unwinds = suite::stack::enter_failure_unwinds,
            stack_pop_all_moves_ownership = suite::stack::pop_all_moves_ownership,
            stack_dropped_stack_releases = suite::stack::dropped_stack_releases,
            time_zip_acquires_concurrently = suite::deadline::zip_acquires_concurrently,
            time_body_timeout_fires = suite::deadline::body_timeout_fires,
            time_acquire_timeout_hands_off = suite::deadline::acquire_timeout_hands_off,
            time_nested_deadlines = suite::deadline::nested_deadlines,
            time_zero_and_huge_durations = suite::deadline::zero_and_huge_durations,
            gather_keeps_order = suite::structured::gather_keeps_order,
            gather_cancels_siblings = suite::structured::gather_cancels_siblings,
            gather_all_collects = suite::structured::gather_all_collects,
            gather_tuple_keeps_order_and_runs_at_once = suite::gather_tuple::tuple_keeps_order_and_runs_at_once,
            gather_tuple_error_cancels_siblings = suite::gather_tuple::tuple_error_cancels_siblings,
            gather_tuple_panic_cancels_siblings = suite::gather_tuple::tuple_panic_cancels_siblings,
            gather_tuple_of_twelve = suite::gather_tuple::tuple_of_twelve,
            gather_tuple_gather_all = suite::gather_tuple::tuple_gather_all,
            gather_tuple_no_starvation = suite::gather_tuple::tuple_no_starvation,
            gather_sibling_drop_panics = suite::gather_tuple::sibling_drop_panics,
            gather_sibling_drop_panics_after_a_panic = suite::gather_tuple::sibling_drop_panics_after_a_panic,
            group_joins_every_child = suite::structured::group_joins_every_child,
            group_fails_fast = suite::structured::group_fails_fast,
            group_collects_all = suite::structured::group_collects_all,
            group_resumes_child_panic = suite::structured::group_resumes_child_panic,
            group_deadline = suite::structured::group_deadline,
            group_cancelled_at_every_await_point = suite::structured::group_cancelled_at_every_await_point,
            group_dropped_cancels_endless_child = suite::structured::dropped_group_cancels_endless_child,
            group_no_child_outlives_its_group = suite::structured::no_child_outlives_its_group,
            group_parallelism = suite::structured::group_parallelism,
            group_resource_around_a_group = suite::structured::resource_around_a_group,
            group_child_drop_panics = suite::structured::group_child_drop_panics,
            group_body_drop_panics = suite::structured::group_body_drop_panics: "allowed",
            group_dropped_reports_failures = suite::structured::group_dropped_reports_failures: "allowed",
            group_nested_failures_not_lost = suite::structured::group_nested_failures_not_lost: "allowed",
            group_errors_in_the_order_they_happened = suite::structured::group_errors_in_the_order_they_happened: "allowed",
            group_body_not_polled_after_a_failure = suite::structured::group_body_not_polled_after_a_failure,
            group_handle_awaited_twice = suite::structured::group_handle_awaited_twice,
            group_handle_abort = suite::structured::group_handle_abort,
            group_unclaimed_values = suite::structured::group_unclaimed_values,
            group_cancellation_reaches_many_children = suite::structured::group_cancellation_reaches_many_children,
            group_body_failure_by_policy = suite::structured::group_body_failure_by_policy,
            group_children_told_the_reason = suite::structured::group_children_told_the_reason,
            group_cancelled_child_release_hangs = suite::structured::group_cancelled_child_release_hangs,
            group_formats = suite::structured::group_formats,
            group_panic_payload_drop_panics = suite::structured::group_panic_payload_drop_panics: "allowed",
            group_cancel_reaches_a_child_listing_itself = suite::structured::group_cancel_reaches_a_child_listing_itself,
            group_api_body_cancels_its_group = suite::group_api::body_cancels_its_group,
            group_api_child_cancels_its_group = suite::group_api::child_cancels_its_group,
            group_api_spawner_starts_siblings = suite::group_api::spawner_starts_siblings,
            group_api_spawner_after_the_group_ended = suite::group_api::spawner_after_the_group_ended,
            group_api_start_reports_a_value = suite::group_api::start_reports_a_value,
            group_api_start_child_fails_before_started = suite::group_api::start_child_fails_before_started,
            group_api_start_child_panics_before_started = suite::group_api::start_child_panics_before_started,
            group_api_start_child_ends_unreported = suite::group_api::start_child_ends_unreported,
            group_api_start_in_a_cancelled_group = suite::group_api::start_in_a_cancelled_group,
            group_api_start_hangs_until_the_deadline = suite::group_api::start_hangs_until_the_deadline,
            group_api_start_dropped_before_started = suite::group_api::start_dropped_before_started: "allowed",
            group_api_task_names = suite::group_api::task_names: "allowed",
            pool_config_errors = suite::pool::config_errors,
            pool_reuses_and_recycles = suite::pool::reuses_and_recycles,
            pool_failed_body_recycles = suite::pool::failed_body_recycles,
            pool_panicked_body_destroys = suite::pool::panicked_body_destroys,
            pool_cancelled_checkout_destroys = suite::pool::cancelled_checkout_destroys,
            pool_fifo_waiters = suite::pool::fifo_waiters,
            pool_dropped_waiters_lose_nothing = suite::pool::dropped_waiters_lose_nothing,
            pool_wait_timeout_fires = suite::pool::wait_timeout_fires,
            pool_create_failure_frees_slot = suite::pool::create_failure_frees_slot,
            pool_close_semantics = suite::pool::close_semantics,
            pool_resize_and_retain = suite::pool::resize_and_retain,
            pool_maintenance = suite::pool::maintenance,
            pool_random_checkouts = suite::pool::random_checkouts,
            pool_background_create_panic = suite::pool::faults::background_create_panic: "allowed",
            pool_background_create_holds_up_no_waiter = suite::pool::faults::background_create_holds_up_no_waiter,
            pool_retain_predicate_panics_and_reenters = suite::pool::faults::retain_predicate_panics_and_reenters,
            pool_destroy_panic_counted_once = suite::pool::faults::destroy_panic_counted_once: "allowed",
            pool_close_stops_granted_waiters = suite::pool::faults::close_stops_granted_waiters,
            pool_callbacks_reenter = suite::pool::faults::callbacks_reenter,
            pool_callback_faults = suite::pool::faults::callback_faults,
            pool_callback_future_drop_panics = suite::pool::faults::callback_future_drop_panics,
            pool_hung_checkout_holds_up_no_one = suite::pool::faults::hung_checkout_holds_up_no_one,
        );

        #[::awith::test(only $only)]
        async fn group_spawn_failure(env: $crate::Env) {
            $crate::quiet_probe_panics();
            let kind = env.kind;
            suite::structured::group_spawn_failure(env, kind.shut_down()).await;
        }

        #[::awith::test(only $only)]
        async fn pool_dropped_pool_destroys_idle(env: $crate::Env) {
            $crate::quiet_probe_panics();
            let kind = env.kind;
            suite::pool::faults::dropped_pool_destroys_idle(env, kind.shut_down()).await;
        }

        #[::awith::test(only $only)]
        async fn group_children_dropped_at_shutdown(env: $crate::Env) {
            $crate::quiet_probe_panics();
            let kind = env.kind;
            suite::structured::group_children_dropped_at_shutdown(env, kind.idle()).await;
        }

        #[::awith::test(only $only)]
        async fn lock_refused_task_is_a_build_error(env: $crate::Env) {
            let kind = env.kind;
            suite::lock::refused_task_is_a_build_error(env, kind.shut_down()).await;
        }

        #[::awith::test(only $only)]
        async fn pool_refused_task_is_a_build_error(env: $crate::Env) {
            $crate::quiet_probe_panics();
            let kind = env.kind;
            suite::pool::refused_task_is_a_build_error(env, kind.shut_down()).await;
        }

        // Tests that build runtimes of their own (a fresh one per case): one
        // plain #[test] per runtime, each generic over the harness.
        $crate::conformance_suite!(@per_harness $only;
            property_random_programs = suite::prop::random_programs,
            matrix_fails_what_a_test_leaves = suite::matrix::fails_what_a_test_leaves,
        );

        #[::awith::test(only $only)]
        async fn suppression(env: $crate::Env) {
            $crate::quiet_probe_panics();
            suite::outcome::suppression(env).await;
        }

        #[::awith::test(only $only)]
        async fn nested_release_order(env: $crate::Env) {
            $crate::quiet_probe_panics();
            suite::outcome::nested_release_order(env).await;
        }

        #[::awith::test(only $only)]
        async fn release_timeout(env: $crate::Env) {
            $crate::quiet_probe_panics();
            suite::outcome::release_timeout(env).await;
        }

        #[::awith::test(only $only)]
        async fn runtime_identity(env: $crate::Env) {
            $crate::quiet_probe_panics();
            suite::contract::identity(env).await;
        }

        #[::awith::test(only $only)]
        async fn spawn_is_concurrent(env: $crate::Env) {
            $crate::quiet_probe_panics();
            suite::contract::spawn_is_concurrent(env).await;
        }

        #[::awith::test(only $only)]
        async fn spawn_parallelism(env: $crate::Env) {
            $crate::quiet_probe_panics();
            suite::contract::spawn_parallelism(env).await;
        }

        #[::awith::test(only $only)]
        async fn sleep_waits_its_duration(env: $crate::Env) {
            $crate::quiet_probe_panics();
            suite::contract::sleep_waits_its_duration(env).await;
        }

        #[::awith::test(only $only)]
        async fn spawn_after_shutdown(env: $crate::Env) {
            $crate::quiet_probe_panics();
            let kind = env.kind;
            suite::contract::spawn_after_shutdown(env, kind.shut_down(), kind.returns_refused_task).await;
        }

        #[::awith::test(only $only)]
        async fn task_set_detaches(env: $crate::Env) {
            $crate::quiet_probe_panics();
            let kind = env.kind;
            suite::contract::task_set_detaches(env, kind.shut_down(), kind.task_set).await;
        }

        #[::awith::test(only $only)]
        async fn cleanup_dropped_at_shutdown(env: $crate::Env) {
            $crate::quiet_probe_panics();
            let kind = env.kind;
            suite::contract::cleanup_dropped_at_shutdown(env, kind.idle()).await;
        }

        #[::awith::test(only $only)]
        async fn refused_cleanup_with_panicking_drop(env: $crate::Env) {
            $crate::quiet_probe_panics();
            let kind = env.kind;
            suite::contract::refused_cleanup_with_panicking_drop(env, kind.shut_down()).await;
        }

        #[::awith::test(only $only)]
        async fn incident_hook_panics(env: $crate::Env) {
            $crate::quiet_probe_panics();
            suite::contract::incident_hook_panics(env).await;
        }

        #[::awith::test(only $only)]
        async fn drain_without_deadline(env: $crate::Env) {
            $crate::quiet_probe_panics();
            suite::contract::drain_without_deadline(env).await;
        }

        #[::awith::test(only $only)]
        async fn drain_waits_for_cleanups(env: $crate::Env) {
            $crate::quiet_probe_panics();
            suite::contract::drain_waits_for_cleanups(env).await;
        }

        #[::awith::test(only $only)]
        async fn drain_deadline_and_cleanup_timeout(env: $crate::Env) {
            $crate::quiet_probe_panics();
            suite::contract::drain_deadline_and_cleanup_timeout(env).await;
        }

        #[::awith::test(only $only)]
        async fn cleanup_from_a_foreign_thread(env: $crate::Env) {
            $crate::quiet_probe_panics();
            suite::contract::cleanup_from_a_foreign_thread(env).await;
        }

        #[::awith::test(only $only)]
        async fn send_scope_is_spawnable(env: $crate::Env) {
            $crate::quiet_probe_panics();
            suite::traits::send_scope_is_spawnable(env).await;
        }

        #[::awith::test(only $only)]
        async fn non_send_body_runs(env: $crate::Env) {
            $crate::quiet_probe_panics();
            suite::traits::non_send_body_runs(env).await;
        }
    };
    (@per_harness $only:tt; $($name:ident = $($test:ident)::+),* $(,)?) => {
        $(
            mod $name {
                $crate::conformance_suite!(@harness_tests $only [$($test)::+]);
            }
        )*
    };
    (@harness_tests ($($runtime:ident),*) $test:tt) => {
        $( $crate::conformance_suite!(@harness_test $runtime $test); )*
    };
    (@harness_test reference [$($test:tt)*]) => {
        #[test]
        fn reference() {
            super::$($test)*::<::awith::test::harness::Reference>();
        }
    };
    (@harness_test tokio_current_thread [$($test:tt)*]) => {
        #[cfg(feature = "tokio")]
        #[test]
        fn tokio_current_thread() {
            super::$($test)*::<::awith::test::harness::TokioCurrentThread>();
        }
    };
    (@harness_test tokio_multi_thread [$($test:tt)*]) => {
        #[cfg(feature = "tokio")]
        #[test]
        fn tokio_multi_thread() {
            super::$($test)*::<::awith::test::harness::TokioMultiThread>();
        }
    };
    (@harness_test async_std [$($test:tt)*]) => {
        #[cfg(feature = "async-std")]
        #[test]
        fn async_std() {
            super::$($test)*::<::awith::test::harness::AsyncStd>();
        }
    };
    (@harness_test smol [$($test:tt)*]) => {
        #[cfg(feature = "smol")]
        #[test]
        fn smol() {
            super::$($test)*::<::awith::test::harness::Smol>();
        }
    };
    (@outcome $only:tt; $($name:ident($a:expr, $b:expr, $r:expr) $(: $incidents:literal)?),* $(,)?) => {
        $(
            #[::awith::test(only $only $(, incidents = $incidents)?)]
            async fn $name(env: $crate::Env) {
                $crate::quiet_probe_panics();
                suite::outcome::case(env, $a, $b, $r).await;
            }
        )*
    };
    (@compose $only:tt; $($name:ident($which:literal)),* $(,)?) => {
        $(
            #[::awith::test(only $only)]
            async fn $name(env: $crate::Env) {
                $crate::quiet_probe_panics();
                suite::cancel::combinators_at_every_await_point(env, $which).await;
            }
        )*
    };
    (@plain $only:tt; $($name:ident = $test:path $(: $incidents:literal)?),* $(,)?) => {
        $(
            #[::awith::test(only $only $(, incidents = $incidents)?)]
            async fn $name(env: $crate::Env) {
                $crate::quiet_probe_panics();
                $test(env).await;
            }
        )*
    };
    (@cancel $only:tt; $($name:ident($plan:literal)),* $(,)?) => {
        $(
            #[::awith::test(only $only)]
            async fn $name(env: $crate::Env) {
                $crate::quiet_probe_panics();
                suite::cancel::at_every_await_point(env, suite::cancel::plan($plan)).await;
            }
        )*
    };
}
