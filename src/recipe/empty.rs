//! The `empty` recipe: an overlay that changes nothing and reads exactly as
//! its backing file (a chain link, a placeholder for a later write).

use super::{Catalogue, Plan, Prediction, Recipe, Target};
use crate::error::Result;
use crate::image::ReadAt;

/// `empty`: no change.
pub struct Empty;

/// `empty` takes no parameters.
#[derive(Debug, Clone, PartialEq, Eq, Default, clap::Args, serde::Serialize)]
pub struct EmptyParams {}

impl Recipe for Empty {
    type Params = EmptyParams;
    const NAME: &'static str = "empty";
    const ABOUT: &'static str = "No change: an overlay that reads exactly as its backing file";

    fn catalogue() -> Catalogue {
        Catalogue {
            targets: "disk",
            damage: "nothing",
            outcomes: Vec::new(),
            repair: None,
            preconditions: Vec::new(),
        }
    }

    fn plan(_: &EmptyParams, _: &mut dyn ReadAt) -> Result<Plan> {
        Ok(Plan::single(
            Self::NAME,
            None,
            Vec::new(),
            Prediction::default(),
        ))
    }

    fn predict(_: &EmptyParams, _: &Target, _: &mut dyn ReadAt) -> Result<Prediction> {
        Ok(Prediction::default())
    }
}

#[cfg(test)]
mod tests {
    use crate::recipe::Spec;

    #[test]
    fn describes_as_its_name() {
        let s = Spec::parse("empty").unwrap();
        assert_eq!(s.describe(), "empty");
        assert_eq!(Spec::parse(&s.describe()).unwrap(), s);
    }
}
