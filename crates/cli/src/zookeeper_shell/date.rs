//! `java.util.Date.toString()` for UTC: `Wed Nov 25 12:39:51 UTC 2026`.
//!
//! zkCli prints `ctime`/`mtime` this way and operators grep and diff those lines, so the shell
//! reproduces the exact layout (`EEE MMM dd HH:mm:ss zzz yyyy`). The zone is always UTC: the
//! tool never consults `TZ`, which keeps its output identical on every host. Days are converted
//! with the proleptic Gregorian calendar (Java switches to Julian dates before 1582, far outside
//! any znode timestamp).

const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Formats milliseconds since the Unix epoch as Java's `Date.toString()` does in UTC.
pub fn java_date(millis: i64) -> String {
    let secs = millis.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let second_of_day = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday (index 4 with Sunday = 0).
    let weekday = (days + 4).rem_euclid(7) as usize;
    format!(
        "{} {} {:02} {:02}:{:02}:{:02} UTC {}",
        WEEKDAYS[weekday],
        MONTHS[(month - 1) as usize],
        day,
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60,
        year
    )
}

/// Year, month (1-12) and day (1-31) of a day count from 1970-01-01 (Howard Hinnant's
/// `civil_from_days`), exact for the whole `i64` millisecond range divided down to days.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_is_the_root_znode_time() {
        assert_eq!(java_date(0), "Thu Jan 01 00:00:00 UTC 1970");
    }

    #[test]
    fn known_instants() {
        // date -u -d @1795610391
        assert_eq!(java_date(1_795_610_391_000), "Wed Nov 25 12:39:51 UTC 2026");
        assert_eq!(java_date(1_795_610_391_999), "Wed Nov 25 12:39:51 UTC 2026");
        // Leap day and the last second of a year.
        assert_eq!(java_date(951_782_400_000), "Tue Feb 29 00:00:00 UTC 2000");
        assert_eq!(java_date(1_704_067_199_000), "Sun Dec 31 23:59:59 UTC 2023");
        // 2100 is not a leap year.
        assert_eq!(java_date(4_107_542_400_000), "Mon Mar 01 00:00:00 UTC 2100");
    }

    #[test]
    fn before_the_epoch_rounds_down() {
        assert_eq!(java_date(-1), "Wed Dec 31 23:59:59 UTC 1969");
        assert_eq!(java_date(-86_400_000), "Wed Dec 31 00:00:00 UTC 1969");
    }

    #[test]
    fn every_day_matches_a_naive_calendar_walk() {
        // Walk day by day from 1970 to 2400, counting months by hand.
        let (mut y, mut m, mut d) = (1970i64, 1i64, 1i64);
        for days in 0..(430 * 366) {
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let month_len = match m {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            d += 1;
            if d > month_len {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }
}
