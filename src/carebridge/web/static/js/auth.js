/* Log in, sign up, log out. */
(function () {
  'use strict';
  var CB = window.CB;
  var HOME = { patient: '/patient', hospital_admin: '/admin', doctor: '/doctor', pharmacist: '/pharmacist',
    regulator: '/regulator', platform_admin: '/regulator', developer: '/portal' };

  function destination(role) {
    var home = HOME[role] || '/';
    var next = new URLSearchParams(location.search).get('next') || '';
    // Only a local path inside the role's own area: never another site, never another role's pages.
    if (home !== '/' && next.charAt(0) === '/' && next.charAt(1) !== '/' &&
        (next === home || next.indexOf(home + '/') === 0 || next.indexOf(home + '?') === 0 ||
         (role === 'patient' && next.indexOf('/oauth/authorize?') === 0) ||
         (role === 'platform_admin' && (next === '/portal' || next.indexOf('/portal/') === 0)))) {
      return next;
    }
    return home;
  }

  function login(username, password) {
    return CB.post('/api/v1/auth/login', { username: username, password: password }, { stay: true })
      .then(function (answer) { location.assign(destination(answer.user.role)); });
  }

  var loginForm = document.getElementById('login-form');
  if (loginForm) {
    loginForm.addEventListener('submit', function (event) {
      event.preventDefault();
      CB.hideMessage();
      var username = CB.$('#username').value.trim();
      var password = CB.$('#password').value;
      if (!username || !password) {
        CB.show('error', '请输入用户名和密码 Enter your username and password');
        return;
      }
      CB.busy(CB.$('#login-submit'), login(username, password)).catch(CB.showError);
    });
    CB.$('#username').focus();
  }

  var registerForm = document.getElementById('register-form');
  if (registerForm) {
    registerForm.addEventListener('submit', function (event) {
      event.preventDefault();
      CB.hideMessage();
      var body = {
        username: CB.$('#reg-username').value.trim(),
        display_name: CB.$('#reg-display').value.trim(),
        password: CB.$('#reg-password').value
      };
      var button = registerForm.querySelector('button[type=submit]');
      CB.busy(button, CB.post('/api/v1/auth/register', body, { stay: true })
        .then(function () { return login(body.username, body.password); }))
        .catch(CB.showError);
    });
  }

  if (CB.page === 'logout') {
    CB.logout();
  }
})();
