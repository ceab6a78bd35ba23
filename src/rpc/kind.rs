//! The error kinds of a failed call (SPEC §4), as they travel in `error_kind`.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Timeout,
    Transport,
    Overloaded,
    Cancelled,
    NotAllowed,
    NotFound,
    BadRequest,
    Runtime,
    BadResponse,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 9] = [
        ErrorKind::Timeout,
        ErrorKind::Transport,
        ErrorKind::Overloaded,
        ErrorKind::Cancelled,
        ErrorKind::NotAllowed,
        ErrorKind::NotFound,
        ErrorKind::BadRequest,
        ErrorKind::Runtime,
        ErrorKind::BadResponse,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::Transport => "transport",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::NotAllowed => "not_allowed",
            ErrorKind::NotFound => "not_found",
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::Runtime => "runtime",
            ErrorKind::BadResponse => "bad_response",
        }
    }

    pub fn parse(name: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in ErrorKind::ALL {
            assert_eq!(ErrorKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(ErrorKind::parse("nope"), None);
    }
}
