//! [`Named`]: a frame's result while its deferred calls run (Go's named results), and the
//! marker trait that ties `defer!(|r| ...)` closures to their frame's result type.

/// A frame's result while its deferred calls run: Go's named results.
///
/// A `defer!(|r| ...)` closure gets `&mut Named<R>`. On a normal return it holds the value
/// the body returned; after a panic it holds the zero value (`Default`) when the type has
/// one (and `Ok(Default)` for a `Result` whose `Ok` type has one), else nothing until a
/// deferred call sets it. Read and write it through `Deref`/`DerefMut` (which panic when
/// nothing is set), [`Named::set`], [`Named::get`] and the compound assignment operators.
///
/// # Example
///
/// ```
/// // Go: func getI() (i int) { i = 1; defer func() { i *= 10 }(); return 20 }  // 200
/// #[gort::func]
/// fn get_i() -> i32 {
///     defer!(|i| *i *= 10);
///     20
/// }
/// assert_eq!(gort::run(get_i), 200);
/// ```
pub struct Named<R> {
    pub(super) value: Option<R>,
    pub(super) func: &'static str,
}

impl<R> Named<R> {
    /// Replaces the result.
    ///
    /// ```
    /// #[gort::func]
    /// fn parse(s: &str) -> Result<i32, String> {
    ///     defer!(|r| {
    ///         if gort::recover().is_some() {
    ///             r.set(Err(format!("bad number {s:?}"))); // Go: err = fmt.Errorf(...)
    ///         }
    ///     });
    ///     Ok(s.parse().unwrap())
    /// }
    /// gort::run(|| {
    ///     assert_eq!(parse("7"), Ok(7));
    ///     assert_eq!(parse("x"), Err("bad number \"x\"".to_string()));
    /// });
    /// ```
    pub fn set(&mut self, v: R) {
        self.value = Some(v);
    }

    /// The result, if set.
    ///
    /// ```
    /// #[gort::func]
    /// fn answer() -> u32 {
    ///     defer!(|r| assert_eq!(r.get(), Some(&42))); // what the body returned
    ///     42
    /// }
    /// assert_eq!(gort::run(answer), 42);
    /// ```
    pub fn get(&self) -> Option<&R> {
        self.value.as_ref()
    }

    /// The result, if set.
    ///
    /// ```
    /// #[gort::func]
    /// fn greeting() -> String {
    ///     defer!(|r| r.get_mut().expect("returned normally").push('!'));
    ///     String::from("hello")
    /// }
    /// assert_eq!(gort::run(greeting), "hello!");
    /// ```
    pub fn get_mut(&mut self) -> Option<&mut R> {
        self.value.as_mut()
    }

    /// Takes the result out, leaving it unset (set it again before the frame ends).
    ///
    /// ```
    /// #[gort::func]
    /// fn sorted() -> Vec<u32> {
    ///     defer!(|r| {
    ///         let mut v = r.take().expect("returned normally");
    ///         v.sort();
    ///         r.set(v);
    ///     });
    ///     vec![3, 1, 2]
    /// }
    /// assert_eq!(gort::run(sorted), [1, 2, 3]);
    /// ```
    pub fn take(&mut self) -> Option<R> {
        self.value.take()
    }

    /// Whether a result is set.
    ///
    /// ```
    /// #[derive(Debug, PartialEq)]
    /// struct Conn(u32); // no `Default`: no zero value
    ///
    /// #[gort::func]
    /// fn dial(fail: bool) -> Conn {
    ///     defer!(|r| {
    ///         if gort::recover().is_some() {
    ///             assert!(!r.is_set()); // the body panicked before returning a `Conn`
    ///             r.set(Conn(0));
    ///         }
    ///     });
    ///     if fail {
    ///         panic!("refused");
    ///     }
    ///     Conn(7)
    /// }
    /// gort::run(|| {
    ///     assert_eq!(dial(false), Conn(7));
    ///     assert_eq!(dial(true), Conn(0));
    /// });
    /// ```
    pub fn is_set(&self) -> bool {
        self.value.is_some()
    }

    #[cold]
    #[track_caller]
    fn unset(&self) -> ! {
        panic!(
            "gort: the result of {} is not set (it panicked and its type has no zero value): \
             use Named::set or Named::get",
            self.func
        )
    }
}

impl<R> std::ops::Deref for Named<R> {
    type Target = R;
    #[track_caller]
    fn deref(&self) -> &R {
        match &self.value {
            Some(v) => v,
            None => self.unset(),
        }
    }
}

impl<R> std::ops::DerefMut for Named<R> {
    #[track_caller]
    fn deref_mut(&mut self) -> &mut R {
        if self.value.is_none() {
            self.unset()
        }
        self.value.as_mut().expect("checked above")
    }
}

macro_rules! forward_op_assign {
    ($($tr:ident $m:ident),*) => {$(
        impl<R: std::ops::$tr<T>, T> std::ops::$tr<T> for Named<R> {
            fn $m(&mut self, rhs: T) {
                std::ops::$tr::$m(&mut **self, rhs)
            }
        }
    )*};
}
forward_op_assign!(AddAssign add_assign, SubAssign sub_assign, MulAssign mul_assign,
    DivAssign div_assign, RemAssign rem_assign, BitAndAssign bitand_assign,
    BitOrAssign bitor_assign, BitXorAssign bitxor_assign, ShlAssign shl_assign,
    ShrAssign shr_assign);

impl<R: std::fmt::Debug> std::fmt::Debug for Named<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.value.fmt(f)
    }
}

/// Ties `WithResult` closures to their frame's result type.
#[doc(hidden)]
pub trait HasResult<R> {}
