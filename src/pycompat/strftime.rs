//! `strftime_now(format)` at a fixed date: transformers calls `datetime.now().strftime(format)`;
//! pingce renders at midnight of a date the caller records, so prompts are reproducible.

use anyhow::{bail, Result};

/// A calendar date (proleptic Gregorian), rendered as at 00:00:00.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Date {
    pub year: i32,
    pub month: u32,
    pub day: u32,
}

const MONTHS: [&str; 12] =
    ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
const DAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

/// Days since 1970-01-01 (Howard Hinnant's days_from_civil).
fn days_from_civil(y: i32, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y } as i64;
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> Date {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = (yoe + era * 400 + if month <= 2 { 1 } else { 0 }) as i32;
    Date { year, month, day }
}

impl Date {
    /// Parses `YYYY-MM-DD`.
    pub fn parse(s: &str) -> Result<Date> {
        let p: Vec<&str> = s.split('-').collect();
        let ok = p.len() == 3 && p[0].len() == 4 && p[1].len() == 2 && p[2].len() == 2;
        let n = |x: &str| x.parse::<u32>().ok();
        match (ok, n(p[0]), p.get(1).and_then(|x| n(x)), p.get(2).and_then(|x| n(x))) {
            (true, Some(y), Some(m), Some(d)) if civil_from_days(days_from_civil(y as i32, m, d)) == (Date { year: y as i32, month: m, day: d }) => {
                Ok(Date { year: y as i32, month: m, day: d })
            }
            _ => bail!("chat template date {s:?} is not a valid YYYY-MM-DD date"),
        }
    }

    /// Today in UTC, from the system clock.
    pub fn today() -> Date {
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        civil_from_days((secs / 86400) as i64)
    }

    fn weekday(&self) -> usize {
        // 1970-01-01 was a Thursday (index 3 from Monday).
        (days_from_civil(self.year, self.month, self.day) + 3).rem_euclid(7) as usize
    }

    fn day_of_year(&self) -> i64 {
        days_from_civil(self.year, self.month, self.day) - days_from_civil(self.year, 1, 1) + 1
    }

    /// Python's `datetime(y, m, d).strftime(format)` in the C locale (time of day 00:00:00).
    pub fn strftime(&self, format: &str) -> Result<String> {
        let mut out = String::new();
        let mut it = format.chars();
        while let Some(c) = it.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            let month = MONTHS[self.month as usize - 1];
            let wd = DAYS[self.weekday()];
            match it.next() {
                Some('Y') => out.push_str(&self.year.to_string()),
                Some('y') => out.push_str(&format!("{:02}", self.year.rem_euclid(100))),
                Some('m') => out.push_str(&format!("{:02}", self.month)),
                Some('d') => out.push_str(&format!("{:02}", self.day)),
                Some('e') => out.push_str(&format!("{:2}", self.day)),
                Some('-') => match it.next() {
                    Some('d') => out.push_str(&self.day.to_string()),
                    Some('m') => out.push_str(&self.month.to_string()),
                    other => bail!("strftime_now: unsupported directive %-{}", other.map(String::from).unwrap_or_default()),
                },
                Some('B') => out.push_str(month),
                Some('b') | Some('h') => out.push_str(&month[..3]),
                Some('A') => out.push_str(wd),
                Some('a') => out.push_str(&wd[..3]),
                Some('j') => out.push_str(&format!("{:03}", self.day_of_year())),
                Some('u') => out.push_str(&(self.weekday() + 1).to_string()),
                Some('w') => out.push_str(&((self.weekday() + 1) % 7).to_string()),
                Some('H') | Some('M') | Some('S') => out.push_str("00"),
                Some('I') => out.push_str("12"),
                Some('p') => out.push_str("AM"),
                Some('F') => out.push_str(&format!("{}-{:02}-{:02}", self.year, self.month, self.day)),
                Some('%') => out.push('%'),
                other => bail!("strftime_now: unsupported directive %{}", other.map(String::from).unwrap_or_default()),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_python() {
        let d = Date::parse("2025-03-07").unwrap();
        assert_eq!(d.strftime("%d %b %Y").unwrap(), "07 Mar 2025");
        assert_eq!(d.strftime("%A, %B %-d, %Y %H:%M %j %y %%").unwrap(), "Friday, March 7, 2025 00:00 066 25 %");
        assert_eq!(Date::parse("2024-02-29").unwrap().strftime("%a %F").unwrap(), "Thu 2024-02-29");
        assert!(Date::parse("2025-02-29").is_err());
        assert!(Date::parse("7 Mar 2025").is_err());
    }
}
