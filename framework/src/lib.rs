pub mod timer_wheel;
