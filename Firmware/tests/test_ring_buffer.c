#include "suites.h"
#include "thermostat/ring_buffer.h"

static th_sample_t stamped(int64_t timestamp)
{
    return (th_sample_t){.timestamp = timestamp};
}

static void keeps_samples_oldest_first(void **state)
{
    (void)state;
    th_sample_t storage[4];
    th_ring_t ring;
    th_ring_init(&ring, storage, 4);
    for (int64_t t = 1; t <= 3; t++) {
        const th_sample_t s = stamped(t);
        assert_false(th_ring_push(&ring, &s));
    }
    assert_int_equal(th_ring_count(&ring), 3);
    assert_int_equal(th_ring_at(&ring, 0)->timestamp, 1);
    assert_int_equal(th_ring_at(&ring, 2)->timestamp, 3);
    assert_null(th_ring_at(&ring, 3));
    assert_int_equal(th_ring_dropped(&ring), 0);
}

static void wraps_around_and_counts_dropped_samples(void **state)
{
    (void)state;
    th_sample_t storage[3];
    th_ring_t ring;
    th_ring_init(&ring, storage, 3);
    for (int64_t t = 0; t < 3; t++) {
        const th_sample_t s = stamped(t);
        assert_false(th_ring_push(&ring, &s));
    }
    for (int64_t t = 3; t < 8; t++) {
        const th_sample_t s = stamped(t);
        assert_true(th_ring_push(&ring, &s));
    }
    assert_int_equal(th_ring_count(&ring), 3);
    assert_int_equal(th_ring_dropped(&ring), 5);
    assert_int_equal(th_ring_first_seq(&ring), 5);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(th_ring_at(&ring, i)->timestamp, 5 + (int64_t)i);
    }
}

static void releases_by_sequence_number(void **state)
{
    (void)state;
    th_sample_t storage[4];
    th_ring_t ring;
    th_ring_init(&ring, storage, 4);
    for (int64_t t = 0; t < 4; t++) {
        const th_sample_t s = stamped(t);
        th_ring_push(&ring, &s);
    }
    const uint64_t end_of_batch = th_ring_first_seq(&ring) + 3;
    for (int64_t t = 4; t < 6; t++) {
        const th_sample_t s = stamped(t);
        th_ring_push(&ring, &s);
    }
    th_ring_release_before(&ring, end_of_batch);
    assert_int_equal(th_ring_count(&ring), 3);
    assert_int_equal(th_ring_at(&ring, 0)->timestamp, 3);
    th_ring_release_before(&ring, 1);
    assert_int_equal(th_ring_count(&ring), 3);
    th_ring_release_before(&ring, 100);
    assert_int_equal(th_ring_count(&ring), 0);
    assert_int_equal(th_ring_first_seq(&ring), 6);
    const th_sample_t next = stamped(6);
    th_ring_push(&ring, &next);
    assert_int_equal(th_ring_at(&ring, 0)->timestamp, 6);
}

static void zero_capacity_drops_everything(void **state)
{
    (void)state;
    th_ring_t ring;
    const th_sample_t s = stamped(1);
    th_ring_init(&ring, NULL, 0);
    assert_true(th_ring_push(&ring, &s));
    assert_int_equal(th_ring_count(&ring), 0);
    assert_int_equal(th_ring_dropped(&ring), 1);
    th_ring_release_before(&ring, 5);
    assert_null(th_ring_at(&ring, 0));
}

int run_ring_buffer_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(keeps_samples_oldest_first),
        cmocka_unit_test(wraps_around_and_counts_dropped_samples),
        cmocka_unit_test(releases_by_sequence_number),
        cmocka_unit_test(zero_capacity_drops_everything),
    };
    return cmocka_run_group_tests_name("ring_buffer", tests, NULL, NULL);
}
